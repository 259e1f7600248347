//! Weighted k-nearest-neighbour accuracy on backbone features (Wu et al. 2018, as solo-learn's
//! online kNN monitor): cosine similarity, the k most similar training samples vote for their
//! label with weight exp(similarity / T).

use tch::{Kind, Tensor};

/// Temperature of the vote weights (solo-learn's default).
pub const VOTE_TEMPERATURE: f64 = 0.07;
/// Test rows scored at once: bounds the similarity matrix to CHUNK × N.
const CHUNK: i64 = 256;

/// Fraction of `test` rows whose vote picks their label. Features are `[N, D]` (normalized
/// here), labels `[N]` int64 in `0..num_classes`.
pub fn knn_accuracy(
    train: &Tensor,
    train_labels: &Tensor,
    test: &Tensor,
    test_labels: &Tensor,
    k: usize,
    num_classes: i64,
) -> f64 {
    tch::no_grad(|| {
        let train = normalize(train);
        let test = normalize(test);
        let k = (k as i64).min(train.size()[0]);
        let n_test = test.size()[0];
        let mut correct = 0i64;
        for start in (0..n_test).step_by(CHUNK as usize) {
            let len = CHUNK.min(n_test - start);
            let votes = vote(
                &test.narrow(0, start, len),
                &train,
                train_labels,
                k,
                num_classes,
            );
            let predicted = votes.argmax(1, false);
            let hits = predicted.eq_tensor(&test_labels.narrow(0, start, len));
            correct += hits.sum(Kind::Int64).int64_value(&[]);
        }
        correct as f64 / n_test.max(1) as f64
    })
}

/// `[rows, num_classes]` summed vote weights.
fn vote(rows: &Tensor, train: &Tensor, labels: &Tensor, k: i64, classes: i64) -> Tensor {
    let sims = rows.matmul(&train.tr());
    let (top, idx) = sims.topk(k, 1, true, true);
    let weights = (top / VOTE_TEMPERATURE).exp();
    let neighbour_labels = labels.index_select(0, &idx.reshape([-1])).view_as(&idx);
    Tensor::zeros([rows.size()[0], classes], (Kind::Float, rows.device())).scatter_add(
        1,
        &neighbour_labels,
        &weights.to_kind(Kind::Float),
    )
}

fn normalize(x: &Tensor) -> Tensor {
    let x = x.to_kind(Kind::Float);
    let norm = x.norm_scalaropt_dim(2, [1], true).clamp_min(1e-12);
    x / norm
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(rows: &[[f32; 2]]) -> Tensor {
        Tensor::from_slice(&rows.concat()).view([rows.len() as i64, 2])
    }

    #[test]
    fn hand_case() {
        // Class 0 points right, class 1 points up; one class-1 outlier near the x axis.
        let train = t(&[[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0], [1.0, 0.05]]);
        let labels = Tensor::from_slice(&[0i64, 0, 1, 1, 1]);
        let test = t(&[[2.0, 0.1], [0.2, 3.0], [1.0, 1.1]]);
        let test_labels = Tensor::from_slice(&[0i64, 1, 0]);
        // Angles: train 0°, 5.7°, 90°, 84.3°, 2.9°; test 2.9°, 86.2°, 47.7°. With k = 3:
        // row 0's nearest are 2.9° (1), 0° (0), 5.7° (0): class 0, right;
        // row 1's are 84.3° (1), 90° (1), 5.7° (0): class 1, right;
        // row 2's are 84.3° (1), 5.7° (0), 90° (1): class 1, wrong for its label 0.
        let acc = knn_accuracy(&train, &labels, &test, &test_labels, 3, 2);
        assert!((acc - 2.0 / 3.0).abs() < 1e-9, "{acc}");
    }
}
