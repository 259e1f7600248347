"""SSR (Feng et al., BMVC 2022) in PyTorch, after github MrChenFeng/SSR_BMVC2022 main_cifar.py and
utils/funcs.py, for trainer/tests/network_ssr.rs.

    ssr_reference.py select IN.npz OUT.npz K THETA_R THETA_S BALANCE
    ssr_reference.py loss DIR WIDTH CLASSES LAMBDA WEIGHT HIDDEN OUT

IN.npz holds `features` [N, D], `probs` [N, C] (softmax of the classifier) and `noisy` [N];
OUT.npz gets `labels` (relabelled) and `selected` (1 where selected), as the reference's
`evaluate`: relabel where the top probability exceeds THETA_R, a kNN vote of K neighbours
(uniform weights, the sample itself included) divided by the prior of the current labels (BALANCE
1, `norm='global'`; 0 as main_clothing1m.py, whose `weighted_knn(..., args.k, 100, 10)` passes
10 as `norm`) and normalized per sample, kept where the label's vote over the top vote is at
least THETA_S.

`loss` is one step of the reference's `train` on given inputs: DIR/state.npz holds the PreAct
ResNet-18's state_dict (its `fc` the classifier), DIR/heads.npz the projector's (`proj_head.*`)
and predictor's (`pred_head.*`, HIDDEN wide inside, OUT out: main_cifar.py 256 and 128,
main_webvision.py 256 and 256, main_clothing1m.py 512 and 512), DIR/io.npz the two strong views `x1`, `x2`, the labels
`labels`, the mixup permutation `idx` and the consistency views `u1` (weak), `u2` (strong).
Writes DIR/out.npz: `loss` (CE of the mixed batch + WEIGHT x D(p2, z1)) and `grad.<name>` of
every parameter.
"""
import os
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


def weighted_knn(feature, label, num_classes, knn_k, chunks=10, norm='global'):
    num = len(feature)
    num_class = torch.tensor([torch.sum(label == i).item() for i in range(num_classes)]) + 1e-10
    pi = num_class / num_class.sum()
    split = np.linspace(0, num, chunks + 1, dtype=int)
    feature = F.normalize(feature, dim=1)
    score = torch.cat([knn_predict(feature[split[i]:split[i + 1]], feature.T, label, num_classes, knn_k)
                       for i in range(chunks)])
    if norm == 'global':
        score = score / pi
    return score / score.sum(1, keepdim=True)


def select(features, probs, noisy, k, theta_r, theta_s, balance):
    his_score, his_label = probs.max(1)
    conf_id = torch.where(his_score > theta_r)[0]
    labels = noisy.clone()
    labels[conf_id] = his_label[conf_id]
    norm = 'global' if balance else 10
    votes = weighted_knn(F.normalize(features, dim=1), labels, probs.size(1), k, norm=norm)
    vote_y = torch.gather(votes, 1, labels.view(-1, 1)).squeeze()
    vote_max = votes.max(dim=1)[0]
    selected = (vote_y / vote_max >= theta_s).long()
    return labels, selected


def mlp(c_in, hidden, out):
    return torch.nn.Sequential(torch.nn.Linear(c_in, hidden), torch.nn.BatchNorm1d(hidden),
                               torch.nn.ReLU(), torch.nn.Linear(hidden, out))


def D(p, z):
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


def npz(path):
    with np.load(path) as f:
        return {k: torch.from_numpy(f[k]) for k in f.files}


def step_loss(directory, width, classes, lam, weight, hidden, out):
    from model_reference import PreResNet18
    encoder = PreResNet18(classes, width=width)
    encoder.load_state_dict(npz(f"{directory}/state.npz"), strict=True)
    classifier, encoder.fc = encoder.fc, torch.nn.Identity()
    proj_head, pred_head = mlp(classifier.in_features, hidden, out), mlp(out, hidden, out)
    heads = npz(f"{directory}/heads.npz")
    for name, module in [("proj_head", proj_head), ("pred_head", pred_head)]:
        mine = {k[len(name) + 1:]: v for k, v in heads.items() if k.startswith(name + ".")}
        missing, unexpected = module.load_state_dict(mine, strict=False)
        assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), missing
    io = npz(f"{directory}/io.npz")
    for m in (encoder, classifier, proj_head, pred_head):
        m.train()
    # main_cifar.py train(), from the mixup on; l and idx given instead of drawn.
    labels_x = io["labels"]
    batch_size = labels_x.size(0)
    targets_x = torch.zeros(batch_size, classes).scatter_(1, labels_x.view(-1, 1), 1)
    l = lam
    all_inputs_x = torch.cat([io["x1"], io["x2"]], dim=0)
    all_targets_x = torch.cat([targets_x, targets_x], dim=0)
    idx = io["idx"]
    input_a, input_b = all_inputs_x, all_inputs_x[idx]
    target_a, target_b = all_targets_x, all_targets_x[idx]
    mixed_input = l * input_a + (1 - l) * input_b
    mixed_target = l * target_a + (1 - l) * target_b
    logits = classifier(encoder(mixed_input))
    Lce = -torch.mean(torch.sum(F.log_softmax(logits, dim=1) * mixed_target, dim=1))
    feats_u1 = encoder(io["u1"])
    feats_u2 = encoder(io["u2"])
    f, h = proj_head, pred_head
    z1, z2 = f(feats_u1), f(feats_u2)
    p1, p2 = h(z1), h(z2)
    Lfc = D(p2, z1)
    loss = Lce + weight * Lfc
    loss.backward()
    out = {"loss": loss.detach()}
    for prefix, module in [("", encoder), ("fc.", classifier), ("proj_head.", proj_head),
                           ("pred_head.", pred_head)]:
        for name, p in module.named_parameters():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            out[f"grad.{prefix}{name}"] = g
    np.savez(os.path.join(directory, "out.npz"), **{k: v.numpy() for k, v in out.items()})


def main():
    command = sys.argv[1]
    if command == "select":
        src, dst, k, theta_r, theta_s, balance = sys.argv[2:8]
        with np.load(src) as f:
            t = {name: torch.from_numpy(f[name]) for name in f.files}
        labels, selected = select(t["features"], t["probs"], t["noisy"], int(k), float(theta_r),
                                  float(theta_s), balance == "1")
        np.savez(dst, labels=labels.numpy(), selected=selected.numpy())
    elif command == "loss":
        directory, width, classes, lam, weight, hidden, out = sys.argv[2:9]
        step_loss(directory, int(width), int(classes), float(lam), float(weight), int(hidden),
                  int(out))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
