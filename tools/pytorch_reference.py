"""The PyTorch side of `deno task bench --pytorch` and `deno task parity`.

Trains one of the project's networks in PyTorch on exactly the data and
minibatch order that the TypeScript run used, then writes the test
predictions back for the benchmark to score with its own mIoU code. The
networks mirror the builders of exercises/*.ts (listed in tools/networks.ts) layer for layer;
the optimizer is SGD with momentum, the loss is computed from the logits
(BCEWithLogitsLoss, CrossEntropyLoss), batch norm has PyTorch's defaults
(momentum 0.1, eps 1e-5), and the test runs in eval mode.

Usage (tools/pytorch.ts writes the input folder and reads the output):

    python3 tools/pytorch_reference.py FOLDER

FOLDER holds meta.json, train_images.f32 [n, h, w, 3], train_masks.i32
[n, h, w] and, for a test, test_images.f32 [m, h, w, 3]; this script writes
result.json and, when there are test images, test_pred.i32 [m, oh, ow] (class
per pixel).

Shared weights (`deno task parity`, `bench --share-weights`): with meta
`init_weights`, the layers with weights (conv, transposed conv, batch norm)
are taken in the order the forward pass runs them, and init_weights.f32 holds
their tensors one after another in PyTorch's layout (conv: weight OIHW, bias;
transposed conv: weight [in, out, h, w], bias; batch norm: weight, bias,
running_mean, running_var); meta `layers` gives each layer's kind and shapes
and must match. With meta `dump_at`, the trained tensors are written in
the same order and layout to weights_<iteration>.f32 after each iteration meta
`dump_at` lists.
"""

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


def crb(cin, cout, order, convs=2, kernel=3, padding=1):
    """Conv + ReLU + BN (CRB) or Conv + BN + ReLU (CBR), `convs` times."""
    layers = []
    for index in range(convs):
        layers.append(nn.Conv2d(cin if index == 0 else cout, cout, kernel, padding=padding))
        relu, norm = nn.ReLU(), nn.BatchNorm2d(cout)
        layers += [relu, norm] if order == "CRB" else [norm, relu]
    return nn.Sequential(*layers)


def up(cin, cout, order):
    """Transposed conv (kernel 2, stride 2) + ReLU + BN in the block's order."""
    relu, norm = nn.ReLU(), nn.BatchNorm2d(cout)
    return nn.Sequential(
        nn.ConvTranspose2d(cin, cout, 2, stride=2),
        *([relu, norm] if order == "CRB" else [norm, relu]),
    )


class Small(nn.Module):
    """bin, semaseg, nearest, transposeconv, concat (SPEC.md items 2-9)."""

    def __init__(self, name, classes):
        super().__init__()
        self.name = name
        if name in ("bin", "semaseg"):
            self.body = crb(3, 32, "CRB", convs=6)
        else:
            self.enc1 = crb(3, 32, "CRB")
            self.enc2 = crb(32, 32, "CRB")
            if name == "transposeconv" or name == "concat":
                self.up = up(32, 32, "CRB")
            if name == "concat":
                self.fuse = crb(64, 32, "CRB", convs=1, kernel=1, padding=0)
            self.dec1 = crb(32, 32, "CRB")
        self.head = nn.Conv2d(32, classes, 1)

    def forward(self, x):
        if self.name in ("bin", "semaseg"):
            return self.head(self.body(x))
        skip = self.enc1(x)
        x = self.enc2(F.max_pool2d(skip, 2))
        if self.name == "nearest":
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        else:
            x = self.up(x)
        if self.name == "concat":
            x = self.fuse(torch.cat([x, skip], dim=1))
        return self.head(self.dec1(x))


class UNetLike(nn.Module):
    """UNet with padding same and filters 16-256 (SPEC.md item 11)."""

    def __init__(self, classes, filters=(16, 32, 64, 128, 256)):
        super().__init__()
        self.enc = nn.ModuleList()
        cin = 3
        for f in filters:
            self.enc.append(crb(cin, f, "CBR"))
            cin = f
        self.ups = nn.ModuleList()
        self.dec = nn.ModuleList()
        for f in reversed(filters[:-1]):
            self.ups.append(up(cin, f, "CBR"))
            self.dec.append(crb(2 * f, f, "CBR"))
            cin = f
        self.head = nn.Conv2d(cin, classes, 1)

    def forward(self, x):
        skips = []
        for index, block in enumerate(self.enc):
            if index > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for upsample, block, skip in zip(self.ups, self.dec, reversed(skips[:-1])):
            x = block(torch.cat([upsample(x), skip], dim=1))
        return self.head(x)


class SegNet(nn.Module):
    """VGG16-style encoder, index unpooling decoder (SPEC.md item 12)."""

    def __init__(self, classes):
        super().__init__()
        enc_convs, enc_filters = (2, 2, 3, 3, 3), (64, 128, 256, 512, 512)
        dec_convs, dec_filters = (3, 3, 3, 2, 2), (512, 256, 128, 64, 64)
        self.enc = nn.ModuleList()
        cin = 3
        for convs, f in zip(enc_convs, enc_filters):
            self.enc.append(crb(cin, f, "CBR", convs=convs))
            cin = f
        self.dec = nn.ModuleList()
        for convs, f in zip(dec_convs, dec_filters):
            self.dec.append(crb(cin, f, "CBR", convs=convs))
            cin = f
        self.head = nn.Conv2d(cin, classes, 1)

    def forward(self, x):
        indices = []
        for block in self.enc:
            x, index = F.max_pool2d(block(x), 2, return_indices=True)
            indices.append(index)
        for block, index in zip(self.dec, reversed(indices)):
            x = block(F.max_unpool2d(x, index, 2))
        return self.head(x)


class UNet(nn.Module):
    """The paper's UNet: no padding, filters 64-1024, centre crop (SPEC.md item 10)."""

    def __init__(self, classes, filters=(64, 128, 256, 512, 1024)):
        super().__init__()
        self.enc = nn.ModuleList()
        cin = 3
        for f in filters:
            self.enc.append(crb(cin, f, "CBR", padding=0))
            cin = f
        self.ups = nn.ModuleList()
        self.dec = nn.ModuleList()
        for f in reversed(filters[:-1]):
            self.ups.append(up(cin, f, "CBR"))
            self.dec.append(crb(2 * f, f, "CBR", padding=0))
            cin = f
        self.head = nn.Conv2d(cin, classes, 1)

    def forward(self, x):
        skips = []
        for index, block in enumerate(self.enc):
            if index > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for upsample, block, skip in zip(self.ups, self.dec, reversed(skips[:-1])):
            x = upsample(x)
            height, width = x.shape[2:]
            top, left = (skip.shape[2] - height) // 2, (skip.shape[3] - width) // 2
            skip = skip[:, :, top:top + height, left:left + width]
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def build(name, classes):
    if name == "unet":
        return UNet(classes)
    if name == "unetlike":
        return UNetLike(classes)
    if name == "segnet":
        return SegNet(classes)
    return Small(name, classes)


WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d)


def layers_in_forward_order(model, x):
    """The modules with weights, in the order a forward pass runs them."""
    order = []
    hooks = [
        module.register_forward_hook(lambda module, inputs, output: order.append(module))
        for module in model.modules()
        if isinstance(module, WEIGHTED)
    ]
    model.eval()
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    model.train()
    return order


def layer_tensors(module):
    """A layer's tensors in the exchange order (weights first, then statistics)."""
    if isinstance(module, nn.BatchNorm2d):
        return [module.weight, module.bias, module.running_mean, module.running_var]
    return [module.weight, module.bias]


def layer_kind(module):
    if isinstance(module, nn.BatchNorm2d):
        return "bn"
    return "convT" if isinstance(module, nn.ConvTranspose2d) else "conv"


def load_weights(layers, described, path):
    """Copies the tensors of init_weights.f32 into the layers, checking kinds and shapes."""
    flat = np.fromfile(path, dtype="<f4")
    if len(described) != len(layers):
        sys.exit(f"init weights: {len(described)} layers given, the network has {len(layers)}")
    offset = 0
    with torch.no_grad():
        for index, (module, layer) in enumerate(zip(layers, described)):
            if layer["kind"] != layer_kind(module):
                sys.exit(f"init weights: layer {index} ({layer['name']}) is {layer['kind']}, "
                         f"the network's is {layer_kind(module)}")
            for tensor, shape in zip(layer_tensors(module), layer["shapes"]):
                if list(tensor.shape) != shape:
                    sys.exit(f"init weights: layer {index} ({layer['name']}) has shape {shape}, "
                             f"the network's is {list(tensor.shape)}")
                count = tensor.numel()
                tensor.copy_(torch.from_numpy(flat[offset:offset + count].reshape(shape)))
                offset += count
    if offset != len(flat):
        sys.exit(f"init weights: {len(flat) - offset} values left over")


def dump_weights(layers, path):
    """Writes the layers' tensors in the exchange order, as float32."""
    with torch.no_grad():
        np.concatenate([
            tensor.detach().numpy().astype("<f4").ravel()
            for module in layers for tensor in layer_tensors(module)
        ]).tofile(path)


def peak_rss_mb():
    """Peak resident set of this process in MiB (VmHWM, else getrusage)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(folder):
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    torch.manual_seed(meta["seed"])
    if meta.get("threads"):
        torch.set_num_threads(meta["threads"])
    size, classes = meta["size"], meta["classes"]
    images = np.fromfile(folder / "train_images.f32", dtype="<f4").reshape(-1, size, size, 3)
    masks = np.fromfile(folder / "train_masks.i32", dtype="<i4").reshape(-1, size, size)
    images = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
    masks = torch.from_numpy(masks.astype(np.int64))
    has_test = (folder / "test_images.f32").exists()
    if has_test:
        test = np.fromfile(folder / "test_images.f32", dtype="<f4").reshape(-1, size, size, 3)
        test = torch.from_numpy(test.transpose(0, 3, 1, 2).copy())

    model = build(meta["model"], classes)
    if meta.get("float64"):
        # The float64 run of the parity check: the exact answer float32 runs are compared to
        model.double()
        images = images.double()
        if has_test:
            test = test.double()
    layers = layers_in_forward_order(model, images[torch.tensor(meta["batches"][0])])
    if meta.get("init_weights"):
        load_weights(layers, meta["layers"], folder / "init_weights.f32")
    optimizer = torch.optim.SGD(model.parameters(), lr=meta["lr"], momentum=meta["momentum"])
    loss_fn = nn.BCEWithLogitsLoss() if classes == 1 else nn.CrossEntropyLoss()
    model.train()
    losses = []
    iter_ms = []
    dump_at = set(meta.get("dump_at") or [])
    warmup = 5
    start = timed = time.perf_counter()
    for iteration, batch in enumerate(meta["batches"], start=1):
        began = time.perf_counter()
        index = torch.tensor(batch)
        x, t = images[index], masks[index]
        optimizer.zero_grad()
        logits = model(x)
        height, width = logits.shape[2:]
        if (height, width) != tuple(t.shape[1:]):
            top, left = (t.shape[1] - height) // 2, (t.shape[2] - width) // 2
            t = t[:, top:top + height, left:left + width]
        if classes == 1:
            loss = loss_fn(logits[:, 0], t.float())
        else:
            loss = loss_fn(logits, t)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        iter_ms.append((time.perf_counter() - began) * 1000)
        if iteration in dump_at:
            dump_weights(layers, folder / f"weights_{iteration}.f32")
        if iteration == warmup:
            timed = time.perf_counter()
        if iteration % 100 == 0:
            print(f"pytorch {meta['model']}: iteration {iteration} loss {losses[-1]:.4f}", flush=True)
    end = time.perf_counter()
    done = len(meta["batches"])

    out_size = list(logits.shape[2:])
    if has_test:
        if meta.get("bn_stats") == "recompute":
            # As lib/batch_norm_stats.ts: the mean of the batch statistics over the
            # training set in chunks of the minibatch size, in the same shuffled
            # order (momentum None is PyTorch's cumulative average).
            batch = len(meta["batches"][0])
            chunks = max(1, len(images) // batch)
            order = torch.tensor(meta["bn_order"])
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.reset_running_stats()
                    module.momentum = None
            with torch.no_grad():
                for chunk in range(chunks):
                    model(images[order[chunk * batch:(chunk + 1) * batch]])

        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(test[i:i + 4]) for i in range(0, len(test), 4)])
        if classes == 1:
            prediction = (logits[:, 0] > 0).int()
        else:
            prediction = logits.argmax(dim=1).int()
        prediction.numpy().astype("<i4").tofile(folder / "test_pred.i32")
        out_size = list(prediction.shape[1:])
    (folder / "result.json").write_text(json.dumps({
        "ms_per_iter": (end - timed) * 1000 / max(done - warmup, 1),
        "iter_ms": iter_ms,
        "train_s": end - start,
        "peak_rss_mb": peak_rss_mb(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "losses": losses,
        "out_size": out_size,
        "params": sum(p.numel() for p in model.parameters()),
        "layers": [
            {"kind": layer_kind(module), "shapes": [list(t.shape) for t in layer_tensors(module)]}
            for module in layers
        ],
    }))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 tools/pytorch_reference.py FOLDER")
    main(sys.argv[1])
