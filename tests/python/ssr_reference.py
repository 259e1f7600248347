"""SSR (Feng et al., BMVC 2022) in PyTorch, after github MrChenFeng/SSR_BMVC2022 main_cifar.py and
utils/funcs.py, for trainer/tests/network_ssr.rs.

    ssr_reference.py select IN.npz OUT.npz K THETA_R THETA_S

IN.npz holds `features` [N, D], `probs` [N, C] (softmax of the classifier) and `noisy` [N];
OUT.npz gets `labels` (relabelled) and `selected` (1 where selected), as the reference's
`evaluate`: relabel where the top probability exceeds THETA_R, a kNN vote of K neighbours
(uniform weights, the sample itself included) divided by the prior of the current labels and
normalized per sample, kept where the label's vote over the top vote is at least THETA_S.
"""
import sys

import numpy as np
import torch
import torch.nn.functional as F


def knn_predict(feature, feature_bank, feature_labels, classes, knn_k):
    sim_matrix = torch.mm(feature, feature_bank)
    sim_weight, sim_indices = sim_matrix.topk(k=knn_k, dim=-1)
    sim_labels = torch.gather(feature_labels.expand(feature.size(0), -1), dim=-1, index=sim_indices)
    sim_weight = torch.ones_like(sim_weight)
    sim_weight = sim_weight / sim_weight.sum(dim=-1, keepdim=True)
    one_hot = torch.zeros(feature.size(0) * knn_k, classes)
    one_hot = one_hot.scatter(dim=-1, index=sim_labels.view(-1, 1), value=1.0)
    return torch.sum(one_hot.view(feature.size(0), -1, classes) * sim_weight.unsqueeze(dim=-1), dim=1)


def weighted_knn(feature, label, num_classes, knn_k, chunks=10):
    num = len(feature)
    num_class = torch.tensor([torch.sum(label == i).item() for i in range(num_classes)]) + 1e-10
    pi = num_class / num_class.sum()
    split = np.linspace(0, num, chunks + 1, dtype=int)
    feature = F.normalize(feature, dim=1)
    score = torch.cat([knn_predict(feature[split[i]:split[i + 1]], feature.T, label, num_classes, knn_k)
                       for i in range(chunks)])
    score = score / pi
    return score / score.sum(1, keepdim=True)


def select(features, probs, noisy, k, theta_r, theta_s):
    his_score, his_label = probs.max(1)
    conf_id = torch.where(his_score > theta_r)[0]
    labels = noisy.clone()
    labels[conf_id] = his_label[conf_id]
    votes = weighted_knn(F.normalize(features, dim=1), labels, probs.size(1), k)
    vote_y = torch.gather(votes, 1, labels.view(-1, 1)).squeeze()
    vote_max = votes.max(dim=1)[0]
    selected = (vote_y / vote_max >= theta_s).long()
    return labels, selected


def main():
    command = sys.argv[1]
    if command == "select":
        src, dst, k, theta_r, theta_s = sys.argv[2:7]
        with np.load(src) as f:
            t = {name: torch.from_numpy(f[name]) for name in f.files}
        labels, selected = select(t["features"], t["probs"], t["noisy"], int(k), float(theta_r),
                                  float(theta_s))
        np.savez(dst, labels=labels.numpy(), selected=selected.numpy())
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
