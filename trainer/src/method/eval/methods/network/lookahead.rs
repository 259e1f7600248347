//! Exact meta-gradients of a one-step look-ahead through a whole network, without a functional
//! copy of the network.
//!
//! Meta-Weight-Net and L2R (IEG) take a differentiable step on per-sample weights `u`,
//! `θ′(u) = θ − α·(∇θ Σᵢ uᵢ·ℓᵢ(θ) + λθ)`, and need `∂L_meta(θ′)/∂uᵢ`. `θ′` is linear in `u`, so
//!
//! `∂L_meta/∂uᵢ = −α · ⟨∇L_meta(θ′), ∇θ ℓᵢ(θ)⟩`,
//!
//! exactly, with no second-order term left out. The engine computes it as the reference
//! implementations' `higher`-style look-ahead does, minus the functional network:
//! 1. `g = ∇θ Σ uᵢℓᵢ` with its graph kept (`create_graph`);
//! 2. `θ′` copied into a *shadow* network of the same architecture, the meta loss evaluated and
//!    differentiated there (first order): `m = ∇L_meta(θ′)`;
//! 3. `∂⟨g, m⟩/∂u` by one more backward through step 1's graph: the per-sample dot products.
//!
//! The cost is the reference's (one double backward through the batch, one forward and backward
//! of the meta batch). The live network's batch-norm running statistics are restored afterwards,
//! as the reference's look-ahead runs on a copy of the model.

use super::{Net, NetSetup};
use crate::method::eval::head::Head;
use crate::model::Backbone;
use anyhow::{ensure, Context, Result};
use tch::nn::VarStore;
use tch::Tensor;

/// The live network's variables, by name: what a look-ahead steps and what it must leave as
/// it found.
pub struct NetParams {
    /// `backbone.*` and `head.*`, trainable, in name order.
    pub trainable: Vec<(String, Tensor)>,
    /// Running statistics and other non-trainable variables.
    pub buffers: Vec<Tensor>,
}

impl NetParams {
    /// The variables of a backbone and a head store (shallow copies: the variables themselves).
    pub fn of(backbone: &VarStore, head: &VarStore) -> NetParams {
        let mut trainable = Vec::new();
        let mut buffers = Vec::new();
        for (prefix, vs) in [("backbone", backbone), ("head", head)] {
            let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, t) in vars {
                if t.requires_grad() {
                    trainable.push((format!("{prefix}.{name}"), t));
                } else {
                    buffers.push(t);
                }
            }
        }
        NetParams { trainable, buffers }
    }

    /// Runs `f`, then puts the buffers (batch-norm running statistics) back as they were,
    /// whatever `f` returned: a look-ahead's forwards must not move the live network's.
    pub fn keeping_buffers<T>(&self, f: impl FnOnce() -> T) -> T {
        let saved: Vec<Tensor> = self.buffers.iter().map(|t| t.copy()).collect();
        let out = f();
        tch::no_grad(|| {
            for (mut t, s) in self.buffers.iter().map(|t| t.shallow_clone()).zip(&saved) {
                t.copy_(s);
            }
        });
        out
    }
}

/// The meta-gradient of a look-ahead and the meta loss it was taken at.
pub struct MetaGradient {
    /// `∂L_meta/∂u`, `[B]`.
    pub du: Tensor,
    pub meta_loss: f64,
}

/// A shadow network that holds `θ′`.
pub struct LookAhead {
    vs: VarStore,
    backbone: Backbone,
    head: Head,
    /// L2 decay `λ/2·‖θ′‖²` added to the meta loss (IEG's meta loss carries the network's
    /// regularization; Meta-Weight-Net's does not).
    meta_decay: f64,
    /// A constant added to each variable's step direction, in `NetParams::trainable` order
    /// (undefined: none): IEG's meta momentum `μ·m`, the live optimizer's buffer.
    offset: Vec<Tensor>,
}

impl LookAhead {
    pub fn new(setup: &NetSetup) -> LookAhead {
        LookAhead::with_shadow(setup.shadow())
    }

    /// A look-ahead holding `θ′` in `shadow` (see [`super::shadow_network`]).
    pub fn with_shadow((vs, backbone, head): (VarStore, Backbone, Head)) -> LookAhead {
        LookAhead {
            vs,
            backbone,
            head,
            meta_decay: 0.0,
            offset: Vec::new(),
        }
    }

    /// Adds `decay/2·‖θ′‖²` to every meta loss from now on.
    pub fn set_meta_decay(&mut self, decay: f64) {
        self.meta_decay = decay;
    }

    /// From now on `θ′ = θ − rate·(∇θ Σ uᵢℓᵢ + wd·θ + offsetᵢ)`; `offset` in
    /// `NetParams::trainable` order, an undefined tensor (or a short list) meaning none. The
    /// offset is a constant: the meta-gradient's formula does not change, only where `θ′` is.
    pub fn set_offset(&mut self, offset: Vec<Tensor>) {
        self.offset = offset;
    }

    /// `½‖θ′‖²` over the shadow's trainable variables (the meta loss's decay term; public for
    /// finite-difference checks after [`LookAhead::step_to`]).
    pub fn shadow_l2(&self) -> Tensor {
        let vars = self.vs.trainable_variables();
        let kind = vars.first().map_or(tch::Kind::Float, |t| t.kind());
        let mut total = Tensor::zeros([], (kind, self.vs.device()));
        for v in &vars {
            total += v.square().sum(kind) / 2.0;
        }
        total
    }

    /// The shadow's variables (for tests: `vs.double()`).
    pub fn var_store(&mut self) -> &mut VarStore {
        &mut self.vs
    }

    /// `∂L_meta(θ′(u))/∂u` at `u = weights` (detached, `[B]`), where `losses` `[B]` are the
    /// per-sample losses of the live network (with their graph), `θ′ = θ − rate·(∇θ Σ uᵢℓᵢ +
    /// wd·θ)`, and `meta` computes the meta loss with the shadow network.
    pub fn meta_gradient(
        &mut self,
        live: &NetParams,
        losses: &Tensor,
        weights: &Tensor,
        rate: f64,
        wd: f64,
        meta: impl FnOnce(Net) -> Result<Tensor>,
    ) -> Result<MetaGradient> {
        let u = weights
            .detach()
            .to_kind(losses.kind())
            .set_requires_grad(true);
        let weighted = (&u * losses).sum(losses.kind());
        let theta: Vec<&Tensor> = live.trainable.iter().map(|(_, t)| t).collect();
        ensure!(
            !theta.is_empty(),
            "the look-ahead has no trainable variable"
        );
        let grads = Tensor::f_run_backward(&[&weighted], &theta, true, true)
            .context("the look-ahead's gradient")?;
        let shadow = self.set_shadow(live, &grads, rate, wd)?;
        let mut meta_loss = meta(Net {
            backbone: &self.backbone,
            head: &self.head,
        })?;
        if self.meta_decay > 0.0 {
            meta_loss += self.shadow_l2() * self.meta_decay;
        }
        let shadow_refs: Vec<&Tensor> = shadow.iter().collect();
        let meta_grads = Tensor::f_run_backward(&[&meta_loss], &shadow_refs, false, false)
            .context("the meta loss's gradient")?;
        let mut dot = Tensor::zeros([], (losses.kind(), losses.device()));
        for (g, m) in grads.iter().zip(&meta_grads) {
            if g.defined() && m.defined() {
                dot += (g * m.detach().to_kind(g.kind())).sum(g.kind());
            }
        }
        let du = Tensor::f_run_backward(&[&dot], &[&u], false, false)
            .context("the meta-gradient of the sample weights")?
            .remove(0);
        Ok(MetaGradient {
            du: du * -rate,
            meta_loss: meta_loss.double_value(&[]),
        })
    }

    /// Sets the shadow to `θ − rate·(grads + wd·θ + offset)` and returns its variables.
    fn set_shadow(
        &self,
        live: &NetParams,
        grads: &[Tensor],
        rate: f64,
        wd: f64,
    ) -> Result<Vec<Tensor>> {
        let shadow = self.shadow_params(live)?;
        tch::no_grad(|| {
            for (i, ((s, (_, p)), g)) in shadow.iter().zip(&live.trainable).zip(grads).enumerate() {
                let mut step = p.detach() * wd;
                if g.defined() {
                    step += g.detach();
                }
                if let Some(o) = self.offset.get(i).filter(|o| o.defined()) {
                    step += o.to_kind(step.kind());
                }
                s.shallow_clone().copy_(&(p.detach() - step * rate));
            }
        });
        Ok(shadow)
    }

    /// The shadow's variables in the order of `live.trainable`.
    fn shadow_params(&self, live: &NetParams) -> Result<Vec<Tensor>> {
        let vars = self.vs.variables();
        live.trainable
            .iter()
            .map(|(name, t)| {
                let s = vars
                    .get(name)
                    .with_context(|| format!("the shadow network has no {name}"))?;
                ensure!(s.size() == t.size(), "{name}: shadow shape {:?}", s.size());
                Ok(s.shallow_clone())
            })
            .collect()
    }

    /// `θ′` without the meta-gradient: the shadow set to `θ − rate·(∇θ Σ uᵢℓᵢ + wd·θ)` (first
    /// order), for finite-difference checks.
    pub fn step_to(
        &mut self,
        live: &NetParams,
        losses: &Tensor,
        weights: &Tensor,
        rate: f64,
        wd: f64,
    ) -> Result<Net<'_>> {
        let weighted = (weights.detach().to_kind(losses.kind()) * losses).sum(losses.kind());
        let theta: Vec<&Tensor> = live.trainable.iter().map(|(_, t)| t).collect();
        let grads = Tensor::f_run_backward(&[&weighted], &theta, false, false)?;
        self.set_shadow(live, &grads, rate, wd)?;
        Ok(Net {
            backbone: &self.backbone,
            head: &self.head,
        })
    }
}

/// Per-sample cross-entropy in the kind of the logits.
pub fn per_sample_loss(logits: &Tensor, labels: &Tensor) -> Tensor {
    super::super::per_sample_ce(logits, labels).to_kind(logits.kind())
}

#[cfg(test)]
mod tests {
    use super::super::live::LiveNetwork;
    use super::*;
    use crate::distributed::ProcessGroup;
    use crate::model::{Arch, NetSpec};
    use tch::{Device, Kind};

    /// (Cross-entropy via `per_sample_loss`: tch's `cross_entropy_for_logits` rounds to f32.)
    /// The engine's `∂L_meta(θ′(u))/∂u` on a ResNet-32 of width 2 in f64 (decay in the step and in the
    /// meta loss) equals central finite differences of the meta loss at `θ′(u ± h·eᵢ)`, `θ′`
    /// set by `step_to` without autograd through the step.
    #[test]
    fn meta_gradient_matches_finite_differences() {
        tch::manual_seed(3);
        let spec = NetSpec::new(Arch::Resnet32, None, Some(2), None).unwrap();
        let mut network = LiveNetwork::new(spec, 3, Device::Cpu);
        network.double();
        let no_images = LiveNetwork::no_images(8, Device::Cpu);
        let mut la = LookAhead::new(&network.setup(&no_images));
        la.var_store().double();
        let (rate, wd) = (0.3, 0.05);
        la.set_meta_decay(wd);
        let live = network.params();
        let net = network.net();
        let g = ProcessGroup::single(Device::Cpu);
        let opts = (Kind::Double, Device::Cpu);
        let x = Tensor::randn([5, 3, 8, 8], opts);
        let y = Tensor::from_slice(&[0i64, 1, 2, 0, 1]);
        let (mx, my) = (
            Tensor::randn([4, 3, 8, 8], opts),
            Tensor::from_slice(&[2i64, 1, 0, 2]),
        );
        let u = Tensor::rand([5], opts);
        let losses = per_sample_loss(&net.logits(&x, true, &g).unwrap(), &y);
        let grad = la
            .meta_gradient(&live, &losses, &u, rate, wd, |s| {
                Ok(per_sample_loss(&s.logits(&mx, true, &g)?, &my).mean(Kind::Double))
            })
            .unwrap();
        let mut at = |u: &Tensor| {
            let losses = per_sample_loss(&net.logits(&x, true, &g).unwrap(), &y);
            let s = la.step_to(&live, &losses, u, rate, wd).unwrap();
            let logits = tch::no_grad(|| s.logits(&mx, true, &g).unwrap());
            let ce = per_sample_loss(&logits, &my).mean(Kind::Double);
            (ce + la.shadow_l2() * wd).double_value(&[])
        };
        let h = 1e-6;
        for i in 0..5 {
            let e = Tensor::zeros([5], opts).index_fill(0, &Tensor::from_slice(&[i]), h);
            let numeric = (at(&(&u + &e)) - at(&(&u - &e))) / (2.0 * h);
            let analytic = grad.du.double_value(&[i]);
            assert!(numeric.abs() > 1e-8, "a zero gradient tests nothing");
            assert!(
                (numeric - analytic).abs() <= 1e-6 * numeric.abs().max(1e-3),
                "u[{i}]: engine {analytic}, finite differences {numeric}"
            );
        }
    }
}
