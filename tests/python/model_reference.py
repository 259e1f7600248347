"""Reference side of trainer/tests/model_reference.rs: the seed papers' networks in PyTorch.

    model_reference.py load  DIR ARCH WIDTH DEPTH CLASSES  # Rust's weights: forward train + eval
    model_reference.py init  DIR ARCH WIDTH DEPTH CLASSES  # torch's own init, for Rust to load
    model_reference.py count ARCH                          # parameters at the published width

The three networks below are copied from their sources with the module names, layer order and
initialization untouched; the only change is that the hard-coded base width (64 for PreAct-18,
16 for ResNet-32) became a `width` argument defaulting to it, so the tests can run narrow
networks on a CPU in seconds. DEPTH is used by wrn only (0 otherwise).

`load` reads DIR/state.npz (Rust's export, load_state_dict(strict=True)) and DIR/io.npz, writes
DIR/torch.npz; `init` writes the fresh model's state_dict and its outputs on DIR/io.npz to
DIR/torch.npz. Both print a JSON summary of a fresh model (names, shapes, parameter count).
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# --- PreAct ResNet-18: github MrChenFeng/SSR_BMVC2022, models/preresnet.py (PreResNet18). ---

def conv3x3(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


class PreActBlock(nn.Module):
    '''Pre-activation version of the BasicBlock.'''
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super(PreActBlock, self).__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = conv3x3(in_planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)

        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False)
            )

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        out += shortcut
        return out


class PreActResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10, width=64):
        super(PreActResNet, self).__init__()
        self.in_planes = width

        self.conv1 = conv3x3(3, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 2 * width, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, num_blocks[3], stride=2)
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)

    def _make_layer(self, block, planes, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for stride in strides:
            layers.append(block(self.in_planes, planes, stride))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.conv1(x)
        out = self.bn1(out)
        out = F.relu(out)
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = self.layer4(out)
        out = F.avg_pool2d(out, 4)
        out = out.view(out.size(0), -1)
        out = self.fc(out)
        return out


def PreResNet18(num_classes=10, width=64):
    return PreActResNet(PreActBlock, [2, 2, 2, 2], num_classes=num_classes, width=width)


# --- Wide ResNet: github xternalz/WideResNet-pytorch, wideresnet.py (WideResNet; its BasicBlock
# renamed WideBasicBlock here, as this file holds three networks). ---

class WideBasicBlock(nn.Module):
    def __init__(self, in_planes, out_planes, stride, dropRate=0.0):
        super(WideBasicBlock, self).__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride,
                               padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_planes, out_planes, kernel_size=3, stride=1,
                               padding=1, bias=False)
        self.droprate = dropRate
        self.equalInOut = (in_planes == out_planes)
        self.convShortcut = (not self.equalInOut) and nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride,
                               padding=0, bias=False) or None

    def forward(self, x):
        if not self.equalInOut:
            x = self.relu1(self.bn1(x))
        else:
            out = self.relu1(self.bn1(x))
        # `a and t or x` asks bool(t) of a tensor, an error in today's PyTorch: the conditional
        # expression FixMatch's copy uses instead, same meaning.
        out = self.conv1(out if self.equalInOut else x)
        if self.droprate > 0:
            out = F.dropout(out, p=self.droprate, training=self.training)
        out = self.conv2(self.relu2(self.bn2(out)))
        return torch.add(x if self.equalInOut else self.convShortcut(x), out)


class NetworkBlock(nn.Module):
    def __init__(self, nb_layers, in_planes, out_planes, block, stride, dropRate=0.0):
        super(NetworkBlock, self).__init__()
        self.layer = self._make_layer(block, in_planes, out_planes, nb_layers, stride, dropRate)

    def _make_layer(self, block, in_planes, out_planes, nb_layers, stride, dropRate):
        layers = []
        # int(): the source's `n = (depth - 4) / 6` is a float under Python 3 (it was Python 2).
        for i in range(int(nb_layers)):
            layers.append(block(i == 0 and in_planes or out_planes, out_planes, i == 0 and stride or 1, dropRate))
        return nn.Sequential(*layers)

    def forward(self, x):
        return self.layer(x)


class WideResNet(nn.Module):
    def __init__(self, depth, num_classes, width=1, dropRate=0.0):
        super(WideResNet, self).__init__()
        nChannels = [16, 16 * width, 32 * width, 64 * width]
        assert((depth - 4) % 6 == 0)
        n = (depth - 4) / 6
        block = WideBasicBlock
        # 1st conv before any network block
        self.conv1 = nn.Conv2d(3, nChannels[0], kernel_size=3, stride=1,
                               padding=1, bias=False)
        # 1st block
        self.block1 = NetworkBlock(n, nChannels[0], nChannels[1], block, 1, dropRate)
        # 2nd block
        self.block2 = NetworkBlock(n, nChannels[1], nChannels[2], block, 2, dropRate)
        # 3rd block
        self.block3 = NetworkBlock(n, nChannels[2], nChannels[3], block, 2, dropRate)
        # global average pooling and classifier
        self.bn1 = nn.BatchNorm2d(nChannels[3])
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(nChannels[3], num_classes)
        self.nChannels = nChannels[3]

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2. / n))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.bias.data.zero_()

    def forward(self, x):
        out = self.conv1(x)
        out = self.block1(out)
        out = self.block2(out)
        out = self.block3(out)
        out = self.relu(self.bn1(out))
        out = F.avg_pool2d(out, 8)
        out = out.view(-1, self.nChannels)
        return self.fc(out)


# --- ResNet-32: github xjtushujun/meta-weight-net, resnet.py (ResNet32), with plain nn layers
# in place of MetaConv2d / MetaBatchNorm2d / MetaLinear (same weight/bias/running_* names). ---

def _weights_init(m):
    if isinstance(m, nn.Linear) or isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight)


class LambdaLayer(nn.Module):
    def __init__(self, lambd):
        super(LambdaLayer, self).__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1, option='A'):
        super(BasicBlock, self).__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)

        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            if option == 'A':
                """
                For CIFAR10 ResNet paper uses option A.
                """
                self.shortcut = LambdaLayer(lambda x:
                                            F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes//4, planes//4), "constant", 0))
            elif option == 'B':
                self.shortcut = nn.Sequential(
                    nn.Conv2d(in_planes, self.expansion * planes, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(self.expansion * planes)
                )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        out = F.relu(out)
        return out


class ResNet32(nn.Module):
    def __init__(self, num_classes, block=BasicBlock, num_blocks=[5, 5, 5], width=16):
        super(ResNet32, self).__init__()
        self.in_planes = width

        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 2 * width, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, num_blocks[2], stride=2)
        self.linear = nn.Linear(4 * width, num_classes)

        self.apply(_weights_init)

    def _make_layer(self, block, planes, num_blocks, stride):
        strides = [stride] + [1]*(num_blocks-1)
        layers = []
        for stride in strides:
            layers.append(block(self.in_planes, planes, stride))
            self.in_planes = planes * block.expansion

        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        out = self.linear(out)
        return out


# --- The harness. ---

PUBLISHED_WIDTH = {"preact18": 64, "wrn": 10, "resnet32": 16}


def build(arch, width, depth, classes):
    if arch == "preact18":
        return PreResNet18(num_classes=classes, width=width)
    if arch == "wrn":
        return WideResNet(depth, classes, width=width)
    if arch == "resnet32":
        return ResNet32(classes, width=width)
    raise SystemExit(f"unknown architecture {arch}")


def summary(fresh):
    state = fresh.state_dict()
    return {
        "names": sorted(state),
        "shapes": {k: list(v.shape) for k, v in state.items()},
        "parameters": sum(p.numel() for p in fresh.parameters()),
    }


def npz(path):
    with np.load(path) as f:
        return {k: torch.from_numpy(f[k]) for k in f.files}


def forward_both(model, io):
    """Train-mode pass on x_train (updates running stats), then eval on x_eval."""
    out = {}
    with torch.no_grad():
        model.train()
        out["train_out"] = model(io["x_train"])
        model.eval()
        out["eval_out"] = model(io["x_eval"])
    return out


def save(directory, tensors):
    np.savez(f"{directory}/torch.npz", **{k: v.numpy() for k, v in tensors.items()})


def main():
    torch.manual_seed(0)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "count":
        arch = args[0]
        model = build(arch, PUBLISHED_WIDTH[arch], 28, 10)
        print(json.dumps({"parameters": sum(p.numel() for p in model.parameters())}))
        return
    if command == "classifier":
        arch, width, depth, classes = args[0], int(args[1]), int(args[2]), int(args[3])
        model = build(arch, width, depth, classes)
        linear = model.linear if arch == "resnet32" else model.fc
        w, b = linear.weight.detach().double(), linear.bias.detach().double()
        print(json.dumps({"fan_in": w.shape[1], "weight_std": w.std().item(),
                          "weight_max": w.abs().max().item(), "bias_max": b.abs().max().item()}))
        return
    directory, arch, width, depth, classes = args[0], args[1], int(args[2]), int(args[3]), int(args[4])
    fresh = build(arch, width, depth, classes)
    io = npz(f"{directory}/io.npz")
    if command == "load":
        model = build(arch, width, depth, classes)
        model.load_state_dict(npz(f"{directory}/state.npz"), strict=True)
        out = forward_both(model, io)
        out.update({f"state.{k}": v for k, v in model.state_dict().items()})
    elif command == "init":
        initial = {f"init.{k}": v.clone() for k, v in fresh.state_dict().items()}
        out = forward_both(fresh, io)
        out.update(initial)
    else:
        raise SystemExit(f"unknown command {command}")
    save(directory, out)
    print(json.dumps(summary(build(arch, width, depth, classes))))


if __name__ == "__main__":
    main()
