//! A live network as the evaluation loop keeps it: backbone and linear head in their own stores
//! (for tests, benchmarks and tools that drive a whole-network method step by step).

use super::lookahead::NetParams;
use super::{Net, NetSetup, TrainImages, TrustedImages};
use crate::method::eval::config::HeadKind;
use crate::method::eval::head::Head;
use crate::model::{Backbone, NetSpec};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

pub struct LiveNetwork {
    pub backbone_vs: VarStore,
    pub backbone: Backbone,
    pub head_vs: VarStore,
    pub head: Head,
    pub spec: NetSpec,
    pub classes: i64,
}

impl LiveNetwork {
    pub fn new(spec: NetSpec, classes: i64, device: Device) -> LiveNetwork {
        let backbone_vs = VarStore::new(device);
        let backbone = Backbone::new(&backbone_vs.root(), &spec);
        let head_vs = VarStore::new(device);
        let dim = backbone.embedding_dim();
        let head = Head::new(&head_vs.root(), HeadKind::Linear, false, dim, classes);
        LiveNetwork {
            backbone_vs,
            backbone,
            head_vs,
            head,
            spec,
            classes,
        }
    }

    /// Both stores in float64 (for finite-difference checks).
    pub fn double(&mut self) {
        self.backbone_vs.double();
        self.head_vs.double();
    }

    pub fn net(&self) -> Net<'_> {
        Net {
            backbone: &self.backbone,
            head: &self.head,
        }
    }

    /// The variables a look-ahead steps (shallow copies).
    pub fn params(&self) -> NetParams {
        NetParams::of(&self.backbone_vs, &self.head_vs)
    }

    /// The whole network's state_dict as PyTorch names it: the backbone's torchvision names,
    /// the classifier under the architecture's attribute (`fc.weight`, `linear.bias`, ...).
    pub fn torchvision_state_dict(&self) -> Vec<(String, Tensor)> {
        let prefix = self.spec.arch.classifier_prefix();
        let mut state = crate::model::torchvision_state_dict(&self.backbone_vs, 0);
        state.extend(
            self.head_vs
                .variables()
                .into_iter()
                .map(|(n, t)| (format!("{prefix}.{n}"), t.detach().contiguous())),
        );
        state
    }

    /// A method's setup for this network, the training set `images` (often none: see
    /// [`LiveNetwork::no_images`]), every other setting its default.
    pub fn setup<'a>(&'a self, images: &'a Tensor) -> NetSetup<'a> {
        NetSetup::new(
            &self.spec,
            self.classes,
            self.backbone.embedding_dim(),
            images,
        )
    }

    /// An empty uint8 image batch of `size`×`size` for [`LiveNetwork::setup`].
    pub fn no_images(size: i64, device: Device) -> Tensor {
        Tensor::zeros([0, 3, size, size], (Kind::Uint8, device))
    }

    /// A trusted set of one black image, for a method whose meta batches are passed in (the
    /// set only has to exist).
    pub fn unused_trusted(device: Device) -> TrustedImages {
        TrustedImages {
            images: TrainImages::Resident(Tensor::zeros([1, 3, 32, 32], (Kind::Uint8, device))),
            labels: Tensor::zeros([1], (Kind::Int64, device)),
        }
    }
}
