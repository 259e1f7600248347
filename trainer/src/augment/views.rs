//! Per-view SSL recipes: the `[augment]` table's shared overrides apply to both views, then
//! `[augment.views.0]` / `[augment.views.1]` (or a named `preset`) override one view each.
//!
//! ```toml
//! [augment]
//! preset = "vicreg-asymmetric"   # view 0: blur_p 1.0, solarize_p 0; view 1: blur_p 0.1, solarize_p 0.2
//! [augment.views.1]
//! solarize_p = 0.3               # explicit per-view keys override the preset's
//! ```
//!
//! Without `views` and `preset` both views get the same recipe, exactly as before per-view
//! recipes existed.

use super::AugmentConfig;
use anyhow::{bail, ensure, Context, Result};

/// VICReg's (and BYOL's) asymmetric recipe: always blur the first view, rarely the second,
/// which alone is solarized (Bardes et al. 2022, appendix C.1; Grill et al. 2020, table 6).
fn preset(name: &str) -> Result<[toml::Table; 2]> {
    let table = |blur_p: f64, solarize_p: f64| {
        let mut t = toml::Table::new();
        t.insert("blur_p".into(), blur_p.into());
        t.insert("solarize_p".into(), solarize_p.into());
        t
    };
    match name {
        "vicreg-asymmetric" => Ok([table(1.0, 0.0), table(0.1, 0.2)]),
        other => bail!("unknown augment preset {other:?}: the presets are \"vicreg-asymmetric\""),
    }
}

/// The two views' recipes: `base` ← shared keys of `table` ← preset ← `views.<v>`.
pub fn view_recipes(base: &AugmentConfig, table: &toml::Table) -> Result<[AugmentConfig; 2]> {
    let mut shared = table.clone();
    let mut per_view = match shared.remove("preset") {
        None => [toml::Table::new(), toml::Table::new()],
        Some(toml::Value::String(name)) => preset(&name)?,
        Some(other) => bail!(
            "augment preset must be a string, not a {}",
            other.type_str()
        ),
    };
    if let Some(views) = shared.remove("views") {
        let toml::Value::Table(views) = views else {
            bail!("[augment.views] must be a table of views 0 and 1");
        };
        for (key, value) in views {
            let v = match key.as_str() {
                "0" => 0,
                "1" => 1,
                _ => bail!("[augment.views.{key}]: there are two views, 0 and 1"),
            };
            let toml::Value::Table(overrides) = value else {
                bail!("[augment.views.{key}] must be a table");
            };
            per_view[v].extend(overrides);
        }
    }
    let mut base = toml::Table::try_from(base).context("serializing the augmentation")?;
    base.extend(shared);
    let recipe = |v: usize| -> Result<AugmentConfig> {
        let mut t = base.clone();
        t.extend(per_view[v].clone());
        let cfg: AugmentConfig = toml::Value::Table(t)
            .try_into()
            .map_err(|e| anyhow::anyhow!("invalid [augment] table for view {v}: {e}"))?;
        cfg.validate()
            .with_context(|| format!("[augment] view {v}"))?;
        Ok(cfg)
    };
    let views = [recipe(0)?, recipe(1)?];
    ensure!(
        views[0].size == views[1].size
            && views[0].mean == views[1].mean
            && views[0].std == views[1].std,
        "[augment.views]: both views need the same size, mean and std (set those in [augment])"
    );
    Ok(views)
}
