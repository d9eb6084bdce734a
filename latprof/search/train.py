"""A candidate's ACC: build it as a Keras model, train it briefly on a proxy task, validate.

MnasNet trains each sampled model for 5 epochs on a proxy task and takes its validation accuracy
as ACC.  Here the proxy is the embedded ``syn-digits`` task (or the user's image folder, see
:mod:`latprof.search.data`) at a small training resolution; latency is always looked up for the
deployment resolution, elsewhere.  The network is the candidate's own, with the dataset's class
count and the training resolution; its width multiplier and blocks are unchanged.

Training uses a hand-written ``tf.function`` step with fused Adam updates instead of
``Model.fit``: Keras traces Adam's update op by op for each of the ~300 variables of a MnasNet
network, which took 25 s per candidate on this machine, longer than the training itself; the
fused step traces in about 5 s and each step is faster too.

A proxy this short (about 190 steps) needs a recipe that gets deep mobile networks moving: a
warm-up then cosine decay of the learning rate; the last batch norm of each residual branch
started at zero (Goyal et al. 2017), so every block starts as the identity and the network
trains as a shallow one first (on a harder variant of the task this alone lifted MnasNet-A1 from
11% to 16%, chance being 10%); and batch-norm moving averages with momentum 0.9 instead of 0.99,
which after so few steps would still hold the statistics of the first ones at validation.

:func:`train_candidate` is a pure top-level function of picklable arguments, so a worker process
or a Ray task can run it; it imports TensorFlow itself.  :func:`zero_cost_score` is a cheap proxy
at initialisation, an option only.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace

import numpy as np

from latprof.arch import Architecture
from latprof.errors import LatprofError
from latprof.search.data import DEFAULT, load_dataset

BN_MOMENTUM = 0.9
WARMUP_STEPS = 20
EVAL_BATCH = 512


@dataclass(frozen=True)
class TrainSettings:
    """How candidates are trained; defaults fit about 10-30 s per MnasNet candidate on one core."""

    epochs: int = 2
    resolution: int = 32
    batch_size: int = 32
    learning_rate: float = 2e-3
    seed: int = 0
    dataset: str = DEFAULT
    threads: int = 1

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.threads < 1 or not self.learning_rate > 0:
            raise LatprofError(f"invalid training settings {self}: epochs, batch size and threads must be >= 1, "
                               "the learning rate > 0")


@dataclass(frozen=True)
class TrainResult:
    """Validation accuracy of a candidate and what it cost; ``seconds`` is the whole call."""

    accuracy: float
    seconds: float
    params: int
    epochs: int
    resolution: int


def train_candidate(arch_text: str, settings: TrainSettings = TrainSettings()) -> TrainResult:
    """Train the architecture ``arch_text`` from scratch and return its validation accuracy."""
    started = time.perf_counter()
    arch = Architecture.from_string(arch_text)
    data = load_dataset(settings.dataset, settings.resolution, settings.seed)
    tf, keras = _tensorflow(settings.threads, settings.seed)
    model = _build(arch, settings.resolution, data.classes)
    _zero_residual_gammas(keras, model)
    variables = [v.value for v in model.trainable_variables]
    count = len(data.y_train)
    batch = min(settings.batch_size, count)
    total = settings.epochs * (count // batch)
    step = _adam_step(tf, keras, model, variables, settings.learning_rate, total, settings.resolution)

    rng = np.random.default_rng(settings.seed)
    for _ in range(settings.epochs):
        order = rng.permutation(count)
        for start in range(0, count - batch + 1, batch):  # the last partial batch is dropped
            chosen = order[start:start + batch]
            step(data.x_train[chosen], data.y_train[chosen])
    accuracy = _accuracy(model, data.x_val, data.y_val)
    params = int(sum(np.prod(v.shape) for v in variables))
    keras.backend.clear_session()  # a worker trains many candidates: free the graph and layer names
    return TrainResult(accuracy=accuracy, seconds=time.perf_counter() - started, params=params,
                       epochs=settings.epochs, resolution=settings.resolution)


def zero_cost_score(arch_text: str, settings: TrainSettings = TrainSettings()) -> float:
    """PROXY, not accuracy: the NASWOT score (Mellor et al., "Neural Architecture Search without
    Training", ICML 2021) of the untrained network on one batch of the dataset.

    Each image gets a binary code, which ReLUs are active; the score is log det of the kernel
    counting, for each pair of images, the units on which their codes agree.  Networks that give
    different images more different codes score higher.  It costs one forward pass instead of a
    training, and correlates with trained accuracy only loosely; never the default.
    """
    arch = Architecture.from_string(arch_text)
    data = load_dataset(settings.dataset, settings.resolution, settings.seed)
    _, keras = _tensorflow(settings.threads, settings.seed)
    model = _build(arch, settings.resolution, data.classes)
    relus = [layer.output for layer in model.layers if isinstance(layer, keras.layers.ReLU)]
    chosen = np.random.default_rng(settings.seed).choice(len(data.y_train), min(settings.batch_size, len(data.y_train)),
                                                          replace=False)
    activations = keras.Model(model.inputs[0], relus)(data.x_train[chosen], training=True)
    codes = np.concatenate([np.reshape(a.numpy() > 0, (len(chosen), -1)) for a in activations], axis=1).astype(float)
    kernel = codes @ codes.T + (1 - codes) @ (1 - codes).T
    keras.backend.clear_session()
    return float(np.linalg.slogdet(kernel)[1])


def _tensorflow(threads: int, seed: int):
    """TensorFlow and Keras, limited to ``threads`` and seeded.

    TensorFlow fixes its thread pools when its runtime starts, so the count can only be set in a
    fresh process (a worker); later calls that ask for another count are warned, not failed.
    """
    from latprof.native import quiet_native_output

    with quiet_native_output():  # TensorFlow logs CUDA probing to fd 2 on import
        import keras
        import tensorflow as tf
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        warnings.warn(f"TensorFlow already runs with {tf.config.threading.get_intra_op_parallelism_threads()} "
                      f"intra-op threads in this process; cannot switch to {threads}", stacklevel=3)
    keras.utils.set_random_seed(seed)
    return tf, keras


def _build(arch: Architecture, resolution: int, classes: int):
    from keras import layers

    from latprof.builder import build_model

    model = build_model(replace(arch, resolution=resolution, classes=classes), batch_size=None)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model


def _zero_residual_gammas(keras, model) -> None:
    """Start each residual branch's last batch norm at zero scale, so every block begins as the
    identity (or the pool) and the network trains as a shallow one first."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.Add):
            branch = layer.input[0]._keras_history.operation  # the builder adds (branch, shortcut)
            if isinstance(branch, keras.layers.BatchNormalization):
                branch.gamma.assign(np.zeros(branch.gamma.shape, dtype="float32"))


def _adam_step(tf, keras, model, variables: list, learning_rate: float, total: int, resolution: int):
    """One compiled training step: cross-entropy, gradients, one fused Adam update per variable,
    the learning rate warmed up over ``WARMUP_STEPS`` then decayed to zero at step ``total``."""
    beta1, beta2, epsilon = tf.constant(0.9), tf.constant(0.999), tf.constant(1e-7)
    slots = [(tf.Variable(tf.zeros_like(v)), tf.Variable(tf.zeros_like(v))) for v in variables]
    steps = tf.Variable(0.0)

    @tf.function(input_signature=[tf.TensorSpec([None, resolution, resolution, 3], tf.float32),
                                  tf.TensorSpec([None], tf.int32)])
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, model(x, training=True)))
        gradients = tape.gradient(loss, variables)
        rate = learning_rate * tf.minimum(1.0, (steps + 1) / WARMUP_STEPS) * 0.5 * (1 + tf.cos(np.pi * steps / total))
        steps.assign_add(1.0)
        power1, power2 = tf.pow(beta1, steps), tf.pow(beta2, steps)
        for variable, gradient, (m, v) in zip(variables, gradients, slots):
            tf.raw_ops.ResourceApplyAdam(var=variable.handle, m=m.handle, v=v.handle, beta1_power=power1,
                                         beta2_power=power2, lr=rate, beta1=beta1, beta2=beta2,
                                         epsilon=epsilon, grad=gradient)
        return loss

    return step


def _accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy, run eagerly in large batches: cheaper than tracing a predict function."""
    correct = 0
    for start in range(0, len(y), EVAL_BATCH):
        probs = model(x[start:start + EVAL_BATCH], training=False)
        correct += int(np.sum(np.argmax(np.asarray(probs), axis=1) == y[start:start + EVAL_BATCH]))
    return correct / len(y)
