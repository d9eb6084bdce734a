"""Which controller finds good architectures with fewest samples: PPO, aging evolution, random search.

Each controller searches the real MnasNet space (``get_space("mnasnet")``, 44 decisions) for a budget
of samples, with 3 seeds each, on the MnasNet soft-constraint reward R = ACC x (LAT / T)^-0.07.  The
table gives the best reward found after 25, 50, 100 and 200 samples, averaged over seeds.

What the signal is, plainly:

- ACC is REAL held-out accuracy of a REAL short training, on a proxy task.  The decoded architecture
  itself (every layer ``latprof.network`` unrolls: stem, each block's repeats with its conv op,
  kernel, expansion, SE, skip and stride, head) is built at 1/16 of its input resolution (128..224
  -> 8..14 px) and 1/4 of its channel widths, and trained from scratch with Adam (lr 1e-2, batch 40)
  for two epochs on 800 of scikit-learn's 1,797 handwritten 8x8 digits (upsampled to the
  resolution), then scored on the other 997.  Batch norm uses batch statistics in training and
  running averages at test time.  The network and its backpropagation are NumPy, written here and
  checked against finite differences when the bench starts.  About 1.4 s of CPU per architecture;
  nothing is fitted, shared between architectures or invented (an architecture sampled twice in one
  process is trained once).  It is a proxy (tiny images and widths, 40 steps), as MnasNet's own
  5-epoch training on 50K images is, and a noisy one: the same architecture trained from another
  initialisation moves by about 0.06 in accuracy, while architectures spread from chance (0.10) to
  about 0.65.  The bench measures how controllers cope with a real, noisy, rugged reward, not
  ImageNet accuracy.
- LAT is NOT measured: it is the architecture's multiply-accumulates at full size (``Network(arch).macs``)
  scaled so that MnasNet-A1 (312M MACs) takes its published 78 ms on a Pixel 1; T = 75 ms.  MACs are
  only a latency proxy (MobileNetV1 and NASNet-A have equal MACs and 113 vs 183 ms on that phone);
  ``latprof search`` takes LAT from a LUT or a measurement instead.

Controllers ask one candidate at a time and hear back in order (the search loop's pattern with one
worker).  Runs go to two worker processes: about 25 minutes on 2 idle cores (41 minutes measured on a
shared machine whose cores other jobs were using).

    python bench/controllers.py [--budget 200] [--seeds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import replace

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import zoom
from sklearn.datasets import load_digits
from threadpoolctl import threadpool_limits

from latprof.arch import SKIP_NONE, SKIP_POOL, Architecture
from latprof.network import HEAD, STEM, Network
from latprof.search.controllers import make_controller
from latprof.space import get_space

RES_DIVISOR, WIDTH_DIVISOR = 16, 4
TRAIN, EPOCHS, BATCH, LR = 800, 2, 40, 1e-2
TARGET_MS, EXPONENT = 75.0, -0.07
A1_MACS, A1_MS = Network(Architecture.from_string("mnasnet-a1")).macs, 78.0
CHECKPOINTS = (25, 50, 100, 200)
CONTROLLERS = ("ppo", "evolution", "random")


# -- a minimal reverse-mode autodiff over NumPy: enough for the space's layers


class Var:
    """A value in the graph; ``back`` pushes this node's gradient to its inputs."""

    __slots__ = ("value", "grad", "back")

    def __init__(self, value: np.ndarray, back=None) -> None:
        self.value, self.grad, self.back = value, None, back

    def add_grad(self, grad: np.ndarray) -> None:
        self.grad = grad if self.grad is None else self.grad + grad


class Graph:
    """Records nodes in creation order, which is a topological order, and replays it backwards."""

    def __init__(self, train: bool) -> None:
        self.train, self.nodes = train, []

    def node(self, value: np.ndarray, back) -> Var:
        var = Var(value, back)
        self.nodes.append(var)
        return var

    def backward(self, out: Var) -> None:
        out.grad = np.ones_like(out.value)
        for var in reversed(self.nodes):
            if var.grad is not None:
                var.back(var.grad)

    def window(self, x: Var, k: int, stride: int, combine, scatter, weight: Var | None = None, weight_grad=None) -> Var:
        """A k x k SAME-padded window op.  ``combine(windows, taps)`` maps the stacked windows
        (n, h, w, c, taps) to the output, ``scatter(grad, tap)`` gives one tap's gradient w.r.t. its
        patch, ``weight_grad(windows, grad)`` the weight's gradient at the taps.  Taps that only ever
        see padding are skipped: at 1x1 a 5x5 window is its centre tap."""
        size = x.value.shape[1]
        out = -(-size // stride)
        total = max((out - 1) * stride + k - size, 0)
        before = total // 2
        padded = np.pad(x.value, ((0, 0), (before, total - before), (before, total - before), (0, 0)))
        span = stride * (out - 1) + 1
        useful = [i for i in range(k) if any(0 <= i + o * stride - before < size for o in range(out))]
        taps = [(i, j) for i in useful for j in useful]
        windows = sliding_window_view(padded, (k, k), axis=(1, 2))[:, :span:stride, :span:stride]
        windows = windows[..., useful[0]:useful[-1] + 1, useful[0]:useful[-1] + 1].reshape(windows.shape[:4] + (-1,))
        y = combine(windows, taps)

        def back(grad: np.ndarray) -> None:
            d_padded = np.zeros_like(padded)
            for tap in taps:
                i, j = tap
                d_padded[:, i:i + span:stride, j:j + span:stride] += scatter(grad, tap)
            x.add_grad(d_padded[:, before:before + size, before:before + size])
            if weight is not None:
                d_weight = np.zeros_like(weight.value)
                d_weight[useful[0]:useful[-1] + 1, useful[0]:useful[-1] + 1] = weight_grad(windows, grad).reshape(
                    (len(useful), len(useful)) + weight.value.shape[2:])
                weight.add_grad(d_weight)

        return self.node(y, back)

    def conv(self, x: Var, w: Var, stride: int) -> Var:
        """Regular convolution, weights (k, k, in, out); a 1x1 one is a plain matrix product."""
        if w.value.shape[0] == 1:
            picked = x.value[:, ::stride, ::stride]

            def back(grad: np.ndarray) -> None:
                w.add_grad((picked.reshape(-1, picked.shape[-1]).T @ grad.reshape(-1, grad.shape[-1]))[None, None])
                d_x = np.zeros_like(x.value)
                d_x[:, ::stride, ::stride] = grad @ w.value[0, 0].T
                x.add_grad(d_x)

            return self.node(picked @ w.value[0, 0], back)

        def taps_weight(taps):  # (c * taps, out), matching windows flattened over (c, taps)
            return np.stack([w.value[i, j] for i, j in taps], axis=1).reshape(-1, w.value.shape[-1])

        def combine(windows, taps):
            n, h, v, c, t = windows.shape
            return (windows.reshape(n * h * v, c * t) @ taps_weight(taps)).reshape(n, h, v, -1)

        def weight_grad(windows, grad):  # (taps, c, out)
            n, h, v, c, t = windows.shape
            flat = windows.reshape(n * h * v, c * t).T @ grad.reshape(n * h * v, -1)
            return flat.reshape(c, t, -1).transpose(1, 0, 2)

        return self.window(x, w.value.shape[0], stride, combine, lambda grad, tap: grad @ w.value[tap].T, w, weight_grad)

    def depthwise(self, x: Var, w: Var, stride: int) -> Var:
        """Depthwise convolution, weights (k, k, channels)."""
        def combine(windows, taps):
            return np.einsum("nhwct,tc->nhwc", windows, np.stack([w.value[tap] for tap in taps]))

        return self.window(x, w.value.shape[0], stride, combine, lambda grad, tap: grad * w.value[tap], w,
                           lambda windows, grad: np.einsum("nhwct,nhwc->tc", windows, grad))

    def avg_pool(self, x: Var, k: int, stride: int) -> Var:
        """SAME average pooling that, like TensorFlow's, divides by the taps inside the image."""
        ones = Var(np.ones((1,) + x.value.shape[1:3] + (1,), x.value.dtype))
        count = self.window(ones, k, stride, lambda windows, taps: windows.sum(axis=-1), lambda grad, tap: grad).value
        self.nodes.pop()  # the count is a constant, not part of the graph
        return self.window(x, k, stride, lambda windows, taps: windows.sum(axis=-1) / count,
                           lambda grad, tap: grad / count)

    def batch_norm(self, x: Var, gamma: Var, beta: Var, running: list) -> Var:
        """Per-channel batch norm: batch statistics when training, running averages at test time."""
        axes = (0, 1, 2)
        if self.train:
            mean, var = x.value.mean(axis=axes), x.value.var(axis=axes)
            running[0], running[1] = 0.9 * running[0] + 0.1 * mean, 0.9 * running[1] + 0.1 * var
        else:
            mean, var = running
        inv = 1.0 / np.sqrt(var + 1e-5)
        normed = (x.value - mean) * inv

        def back(grad: np.ndarray) -> None:
            gamma.add_grad((grad * normed).sum(axis=axes))
            beta.add_grad(grad.sum(axis=axes))
            grad = grad * gamma.value
            x.add_grad(inv * (grad - grad.mean(axis=axes) - normed * (grad * normed).mean(axis=axes)))

        return self.node(normed * gamma.value + beta.value, back)

    def relu(self, x: Var) -> Var:
        return self.node(np.maximum(x.value, 0), lambda grad: x.add_grad(grad * (x.value > 0)))

    def add(self, a: Var, b: Var) -> Var:
        return self.node(a.value + b.value, lambda grad: (a.add_grad(grad), b.add_grad(grad)))

    def squeeze_excite(self, x: Var, w1: Var, b1: Var, w2: Var, b2: Var) -> Var:
        """x times sigmoid(relu(mean(x) w1 + b1) w2 + b2), per channel."""
        hw = x.value.shape[1] * x.value.shape[2]
        m = x.value.mean(axis=(1, 2))
        z = m @ w1.value + b1.value
        a = np.maximum(z, 0)
        s = 1.0 / (1.0 + np.exp(-np.clip(a @ w2.value + b2.value, -30, 30)))

        def back(grad: np.ndarray) -> None:
            d_logit = (grad * x.value).sum(axis=(1, 2)) * s * (1 - s)
            w2.add_grad(a.T @ d_logit)
            b2.add_grad(d_logit.sum(axis=0))
            dz = (d_logit @ w2.value.T) * (z > 0)
            w1.add_grad(m.T @ dz)
            b1.add_grad(dz.sum(axis=0))
            x.add_grad(grad * s[:, None, None, :] + (dz @ w1.value.T)[:, None, None, :] / hw)

        return self.node(x.value * s[:, None, None, :], back)

    def pool_dense_xent(self, x: Var, w: Var, b: Var, labels: np.ndarray) -> tuple[Var, np.ndarray]:
        """Global average pool, dense, softmax cross-entropy (mean over the batch); also the logits."""
        hw = x.value.shape[1] * x.value.shape[2]
        pooled = x.value.mean(axis=(1, 2))
        logits = pooled @ w.value + b.value
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        rows = np.arange(len(labels))

        def back(grad: np.ndarray) -> None:
            d_logits = np.exp(log_probs)
            d_logits[rows, labels] -= 1
            d_logits *= grad / len(labels)
            w.add_grad(pooled.T @ d_logits)
            b.add_grad(d_logits.sum(axis=0))
            x.add_grad(np.broadcast_to((d_logits @ w.value.T)[:, None, None, :] / hw, x.value.shape))

        return self.node(np.array(-log_probs[rows, labels].mean(), dtype=x.value.dtype), back), logits


def channels(c: int) -> int:
    return max(2, -(-c // WIDTH_DIVISOR))


class ProxyNet:
    """The decoded architecture at 1/16 resolution and 1/4 width.

    Convolutions are He-initialised and each is followed by a batch norm.  As in Goyal et al. (2017),
    the batch norm closing a residual branch starts with a zero scale, so a layer with a shortcut
    starts as the identity; the classifier starts at zero.  Both only make a short training go
    further: without them two epochs leave most of the space's deep networks near chance.
    """

    def __init__(self, arch: Architecture, seed: int, dtype=np.float32) -> None:
        self.layers = Network(replace(arch, resolution=arch.resolution // RES_DIVISOR)).layers
        self.resolution = arch.resolution // RES_DIVISOR
        rng = np.random.default_rng(seed)
        self.params: dict[str, Var] = {}
        self.running: dict[str, list] = {}  # batch norms' running mean and variance

        def weight(name: str, shape: tuple, fan_in: int) -> None:
            self.params[name] = Var((rng.standard_normal(shape) * math.sqrt(2.0 / fan_in)).astype(dtype))

        def conv(name: str, shape: tuple, fan_in: int, zero_scale: bool = False) -> None:
            weight(name, shape, fan_in)
            self.params[name + "_bn.gamma"] = Var(np.full(shape[-1], 0.0 if zero_scale else 1.0, dtype))
            self.params[name + "_bn.beta"] = Var(np.zeros(shape[-1], dtype))
            self.running[name + "_bn"] = [0.0, 1.0]

        def zeros(name: str, *shape: int) -> None:
            self.params[name] = Var(np.zeros(shape, dtype))

        for n, layer in enumerate(self.layers):
            cin, cout, k = channels(layer.in_ch), channels(layer.out_ch), layer.kernel
            mid = cout if layer.regular_conv else cin * layer.expand  # the width SE acts on
            if layer.kind == STEM:
                conv(f"{n}.conv", (k, k, 1, cout), k * k)
            elif layer.kind == HEAD:
                conv(f"{n}.conv", (1, 1, cin, cout), cin)
                zeros(f"{n}.dense", cout, 10)
                zeros(f"{n}.bias", 10)
            else:
                if layer.regular_conv:
                    conv(f"{n}.conv", (k, k, cin, cout), k * k * cin)
                else:
                    if layer.expand != 1:
                        conv(f"{n}.expand", (1, 1, cin, mid), cin)
                    conv(f"{n}.dw", (k, k, mid), k * k)
                    conv(f"{n}.project", (1, 1, mid, cout), mid, zero_scale=layer.shortcut != SKIP_NONE)
                if layer.se_ch:
                    se = channels(layer.se_ch)
                    weight(f"{n}.se1", (mid, se), mid)
                    weight(f"{n}.se2", (se, mid), se)
                    zeros(f"{n}.se1b", se)
                    zeros(f"{n}.se2b", mid)
        # one flat buffer behind every parameter, so an Adam step is a few array operations, not hundreds
        self.flat = np.concatenate([var.value.ravel() for var in self.params.values()])
        offset = 0
        for var in self.params.values():
            var.value, offset = self.flat[offset:offset + var.value.size].reshape(var.value.shape), offset + var.value.size

    def flat_grad(self) -> np.ndarray:
        return np.concatenate([var.grad.ravel() for var in self.params.values()])

    def loss(self, images: np.ndarray, labels: np.ndarray, train: bool) -> tuple[Graph, Var, np.ndarray]:
        """The graph of one forward pass, its mean cross-entropy and the logits."""
        g, p = Graph(train), self.params
        x = Var(images)

        def conv_bn(v: Var, name: str, stride: int, relu: bool = True) -> Var:
            w = p[name]
            v = g.depthwise(v, w, stride) if w.value.ndim == 3 else g.conv(v, w, stride)
            v = g.batch_norm(v, p[name + "_bn.gamma"], p[name + "_bn.beta"], self.running[name + "_bn"])
            return g.relu(v) if relu else v

        for n, layer in enumerate(self.layers):
            if layer.kind == STEM:
                x = conv_bn(x, f"{n}.conv", layer.stride)
            elif layer.kind == HEAD:
                x = conv_bn(x, f"{n}.conv", 1)
                loss, logits = g.pool_dense_xent(x, p[f"{n}.dense"], p[f"{n}.bias"], labels)
                return g, loss, logits
            else:
                inp = x
                if layer.regular_conv:
                    x = conv_bn(x, f"{n}.conv", layer.stride)
                else:
                    if layer.expand != 1:
                        x = conv_bn(x, f"{n}.expand", 1)
                    x = conv_bn(x, f"{n}.dw", layer.stride)
                if layer.se_ch:
                    x = g.squeeze_excite(x, p[f"{n}.se1"], p[f"{n}.se1b"], p[f"{n}.se2"], p[f"{n}.se2b"])
                if not layer.regular_conv:
                    x = conv_bn(x, f"{n}.project", 1, relu=False)
                if layer.shortcut == SKIP_POOL:
                    x = g.add(x, g.avg_pool(inp, layer.stride if layer.stride > 1 else 3, layer.stride))
                elif layer.shortcut != SKIP_NONE:
                    x = g.add(x, inp)
        raise AssertionError("a network ends with its head")


# -- the proxy task


@functools.cache
def digits(px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits at ``px`` x ``px`` (bilinear), standardised; 1,000 train, 797 test."""
    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    images = np.stack([zoom(image / 16.0, px / 8, order=1) for image in data.images[order]])[..., None]
    images = ((images - images[:TRAIN].mean()) / images[:TRAIN].std()).astype(np.float32)
    labels = data.target[order]
    return images[:TRAIN], labels[:TRAIN], images[TRAIN:], labels[TRAIN:]


def train_accuracy(arch: Architecture, seed: int = 0) -> float:
    """Held-out accuracy of the proxy network after EPOCHS of Adam on the training digits."""
    net = ProxyNet(arch, seed)
    x_train, y_train, x_test, y_test = digits(net.resolution)
    rng = np.random.default_rng(seed)
    m, v = np.zeros_like(net.flat), np.zeros_like(net.flat)
    step = 0
    for _ in range(EPOCHS):
        order = rng.permutation(len(y_train))
        for start in range(0, len(order), BATCH):
            rows = order[start:start + BATCH]
            for var in net.params.values():
                var.grad = np.zeros_like(var.value)  # a parameter the loss does not reach still has a gradient
            graph, loss, _ = net.loss(x_train[rows], y_train[rows], train=True)
            graph.backward(loss)
            grad, step = net.flat_grad(), step + 1
            m[...] = 0.9 * m + 0.1 * grad
            v[...] = 0.999 * v + 0.001 * grad ** 2
            net.flat -= LR * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
    _, _, logits = net.loss(x_test, y_test, train=False)
    return float((logits.argmax(axis=1) == y_test).mean())


def check_gradients(seed: int = 0, probes: int = 30) -> float:
    """Largest relative error of backprop vs central differences, over a few random architectures."""
    space, rng, worst = get_space("mnasnet"), np.random.default_rng(seed), 0.0
    x_train, y_train, _, _ = digits(8)
    for _ in range(3):
        arch = replace(space.decode([int(rng.integers(len(c.options))) for c in space.choices()]), resolution=128)
        net = ProxyNet(arch, seed, dtype=np.float64)
        for var in net.params.values():  # move off the zero initialisations, whose gradients are trivial
            var.value += 0.3 * rng.standard_normal(var.value.shape)
        images, labels = x_train[:16].astype(np.float64), y_train[:16]
        graph, loss, _ = net.loss(images, labels, train=True)
        graph.backward(loss)
        names = list(net.params)
        for _ in range(probes):
            var = net.params[names[int(rng.integers(len(names)))]]
            index = tuple(int(rng.integers(d)) for d in var.value.shape)
            analytic, original = var.grad[index], var.value[index]
            values = []
            for delta in (1e-7, -1e-7):
                var.value[index] = original + delta
                values.append(float(net.loss(images, labels, train=True)[1].value))
            var.value[index] = original
            numeric = (values[0] - values[1]) / 2e-7
            worst = max(worst, abs(numeric - analytic) / max(1e-4, abs(numeric) + abs(analytic)))
    return worst


def latency_ms(arch: Architecture) -> float:
    """MACs-proportional latency proxy, calibrated so MnasNet-A1 takes its published 78 ms."""
    return Network(arch).macs / A1_MACS * A1_MS


@functools.cache
def evaluate(arch_string: str) -> tuple[float, float, float]:
    """(reward, accuracy, latency proxy in ms); an architecture sampled twice is trained once."""
    arch = Architecture.from_string(arch_string)
    accuracy, latency = train_accuracy(arch), latency_ms(arch)
    return accuracy * (latency / TARGET_MS) ** EXPONENT, accuracy, latency


def search(task: tuple[str, int, int]) -> tuple[str, int, list[tuple[float, float, float]], float]:
    """One controller, one seed: ``budget`` samples, asked one at a time and told in order."""
    name, seed, budget = task
    started = time.perf_counter()
    with threadpool_limits(1):
        space = get_space("mnasnet")
        controller = make_controller(name, [len(c.options) for c in space.choices()], seed)
        results = []
        for _ in range(budget):
            (decisions,) = controller.ask(1)
            results.append(evaluate(space.decode(decisions).to_string()))
            controller.tell([decisions], [results[-1][0]])
    return name, seed, results, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()

    error = check_gradients()
    print(f"proxy-net backprop vs finite differences: worst relative error {error:.1e}")
    if error > 1e-2:
        raise SystemExit("the proxy network's gradient is wrong: not running a search on it")
    print("reward R = ACC x (LAT / 75 ms)^-0.07 on the MnasNet space.\n  ACC: held-out accuracy of the decoded net at "
          "1/16 resolution and 1/4 width, trained 2 epochs on 800 sklearn digits, scored on 997 (real training).\n"
          "  LAT: MACs proxy (MnasNet-A1 = 78 ms), NOT a measurement.")
    tasks = [(name, seed, args.budget) for seed in range(args.seeds) for name in CONTROLLERS]
    started, runs = time.perf_counter(), []
    with ProcessPoolExecutor(args.workers) as pool:
        for future in as_completed([pool.submit(search, task) for task in tasks]):
            runs.append(future.result())
            name, seed, results, seconds = runs[-1]
            print(f"  {name:<10} seed {seed}: best R {max(r for r, _, _ in results):.4f} in {seconds:.0f} s", flush=True)
    print(f"{len(tasks)} searches x {args.budget} samples in {time.perf_counter() - started:.0f} s "
          f"({sum(s for *_, s in runs) / (len(tasks) * args.budget):.2f} s per sample and worker)\n")

    checkpoints = [c for c in CHECKPOINTS if c <= args.budget]
    curves = {name: np.array([np.maximum.accumulate([r for r, _, _ in results]) for n, _, results, _ in runs if n == name])
              for name in CONTROLLERS}
    header = f"{'controller':<11}" + "".join(f"{f'best@{c}':>17}" for c in checkpoints) + f"{'mean R last 50':>16}"
    print(header + "\n" + "-" * len(header))
    for name in CONTROLLERS:
        cells = "".join(f"{curves[name][:, c - 1].mean():>10.4f} ± {curves[name][:, c - 1].std():.4f}" for c in checkpoints)
        last = np.mean([[r for r, _, _ in results][-50:] for n, _, results, _ in runs if n == name])
        print(f"{name:<11}{cells}{last:>16.4f}")
    print()
    for name in CONTROLLERS:
        best = max((max(results), seed) for n, seed, results, _ in runs if n == name)
        (reward, accuracy, latency), seed = best
        print(f"{name:<11} best R {reward:.4f} (seed {seed}): accuracy {accuracy:.3f}, latency proxy {latency:.1f} ms")
    final = {name: curves[name][:, -1].mean() for name in CONTROLLERS}
    area = {name: curves[name].mean() for name in CONTROLLERS}
    print(f"\nbeats random at {args.budget} samples (mean over seeds): "
          + ", ".join(f"{n} {'yes' if final[n] > final['random'] else 'NO'}" for n in ("ppo", "evolution")))
    for name in ("ppo", "evolution"):
        reached = np.flatnonzero(curves[name].mean(axis=0) >= final["random"])
        print(f"{name}: mean best-so-far over all budgets {area[name]:.4f} (random {area['random']:.4f}); reaches random's "
              f"final mean best after {reached[0] + 1 if len(reached) else 'more than ' + str(args.budget)} samples")
    learned = max(("ppo", "evolution"), key=lambda n: area[n])
    print(f"more sample-efficient learned controller: {learned}")

if __name__ == "__main__":
    main()
