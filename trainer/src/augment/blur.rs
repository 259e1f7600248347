//! Gaussian blur with a different sigma per sample, as one grouped convolution per axis over the
//! whole batch (torchvision's `gaussian_blur`: separable kernel of odd `size`, reflect padding).

use tch::{Kind, Tensor};

/// Blurs `x` `N×C×H×W` (float) with `sigma` `[N]` and an odd kernel `size` (< H and W).
pub fn gaussian_blur(x: &Tensor, sigma: &Tensor, size: i64) -> Tensor {
    let (n, c, h, w) = x.size4().expect("N×C×H×W batch");
    let kernels = kernels_1d(sigma, size, x.device()).repeat_interleave_self_int(c, 0, None::<i64>);
    let pad = size / 2;
    let groups = n * c;
    let y = x
        .reshape([1, groups, h, w])
        .reflection_pad2d([pad, pad, pad, pad]);
    let y = y.conv2d(
        &kernels.view([groups, 1, 1, size]).to_kind(x.kind()),
        None::<Tensor>,
        [1, 1],
        [0, 0],
        [1, 1],
        groups,
    );
    let y = y.conv2d(
        &kernels.view([groups, 1, size, 1]).to_kind(x.kind()),
        None::<Tensor>,
        [1, 1],
        [0, 0],
        [1, 1],
        groups,
    );
    y.reshape([n, c, h, w])
}

/// `[N, size]` normalized Gaussian kernels, torchvision's `_get_gaussian_kernel1d`.
fn kernels_1d(sigma: &Tensor, size: i64, device: tch::Device) -> Tensor {
    let half = (size - 1) as f64 * 0.5;
    let x = Tensor::linspace(-half, half, size, (Kind::Float, device)).view([1, size]);
    let sigma = sigma.to_kind(Kind::Float).to_device(device).view([-1, 1]);
    let pdf = (x.square() / (sigma.square() * 2.0)).neg().exp();
    &pdf / pdf.sum_dim_intlist(1, true, Kind::Float)
}
