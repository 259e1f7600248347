//! Which TensorBoard tag each numeric field of a `metrics.jsonl` line goes to. Tags are grouped
//! by their first segment, which TensorBoard shows as one section per group.

use serde_json::{Map, Value};

/// Bookkeeping fields, not curves (the step is the x axis already).
const SKIPPED: [&str; 5] = ["step", "steps", "epoch", "time", "knn_k"];

/// Known fields of pretraining and evaluation lines.
const TAGS: [(&str, &str); 18] = [
    ("loss", "train/loss"),
    ("nt_xent", "train/loss_nt_xent"),
    ("repr", "train/loss_invariance"),
    ("std", "train/loss_variance"),
    ("cov", "train/loss_covariance"),
    ("lr", "train/lr"),
    ("lr_head", "train/lr"),
    ("images_per_s", "train/images_per_s"),
    ("noisy_predicted_true", "train/noisy_predicted_true"),
    ("data_s", "time/data_s"),
    ("compute_s", "time/compute_s"),
    ("knn_acc1", "knn/acc1"),
    ("acc1", "test/acc1"),
    ("acc5", "test/acc5"),
    ("best_acc1", "test/best_acc1"),
    ("best_acc5", "test/best_acc5"),
    ("imagenet_acc1", "test/imagenet_acc1"),
    ("imagenet_acc5", "test/imagenet_acc5"),
];

/// Group of fields not in [`TAGS`]: the evaluation methods' own figures (`ssr_precision`, …).
const OTHER_GROUP: &str = "method";

/// The record's numeric fields as (tag, value); null and non-numeric fields are left out.
pub fn scalars(record: &Map<String, Value>) -> Vec<(String, f32)> {
    record
        .iter()
        .filter(|(field, _)| !SKIPPED.contains(&field.as_str()))
        .filter_map(|(field, value)| Some((tag(field), value.as_f64()? as f32)))
        .collect()
}

fn tag(field: &str) -> String {
    match TAGS.iter().find(|(name, _)| *name == field) {
        Some((_, tag)) => tag.to_string(),
        None => format!("{OTHER_GROUP}/{field}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_fields_become_grouped_tags_and_bookkeeping_is_left_out() {
        let record = json!({
            "step": 7, "epoch": 0.5, "steps": 1, "time": "2026-01-01T00:00:00Z", "knn_k": 20,
            "loss": 2.5, "repr": 0.25, "lr_head": 0.1, "acc1": 0.75,
            "noisy_predicted_true": null, "ssr_precision": 0.875,
        });
        let mut got = scalars(record.as_object().unwrap());
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let expected = [
            ("method/ssr_precision", 0.875),
            ("test/acc1", 0.75),
            ("train/loss", 2.5),
            ("train/loss_invariance", 0.25),
            ("train/lr", 0.1),
        ]
        .map(|(t, v)| (t.to_string(), v as f32));
        assert_eq!(got, expected);
    }
}
