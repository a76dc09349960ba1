"""The layers' properties on whichever Keras backend runs the suite.

Written with NumPy and ``keras.ops`` only, so that the same tests run under
``KERAS_BACKEND=tensorflow`` (with the whole suite) and under
``KERAS_BACKEND=jax`` or ``torch`` (these tests alone; see
``tests/conftest.py``). References: NumPy, a stock ``keras.layers.Conv2D``
holding the expanded kernel, and the backend's own autodiff.
"""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from tiny import CONTACT_TINY, RNA_TINY

import keras_symconv as ks
from keras_symconv.ops import slots

BACKEND = keras.backend.backend()


def _gradient(loss, variables):
    """``d loss() / d variables`` with the backend's autodiff, as NumPy arrays."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            value = loss()
        return [g.numpy() for g in tape.gradient(value, [v.value for v in variables])]
    if BACKEND == "jax":
        import jax

        def pure(values):
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return loss()

        grads = jax.grad(pure)([v.value for v in variables])
        return [np.asarray(g) for g in grads]
    if BACKEND == "torch":
        value = loss()
        grads = __import__("torch").autograd.grad(value, [v.value for v in variables])
        return [g.detach().cpu().numpy() for g in grads]
    pytest.skip(f"no gradient helper for backend {BACKEND!r}")


def _symmetric(rng, shape):
    x = rng.normal(size=shape).astype("float32")
    return x + x.transpose(0, 2, 1, 3)


def _self_cartesian(x):
    b, n, c = x.shape
    rows = np.broadcast_to(x[:, :, None, :], (b, n, n, c))
    cols = np.broadcast_to(x[:, None, :, :], (b, n, n, c))
    return np.concatenate([rows, cols], axis=-1)


def _np(x):
    return keras.ops.convert_to_numpy(x)


@pytest.mark.parametrize(
    "kernel_size, padding", [(1, "same"), (3, "same"), (3, "valid"), (4, "same")]
)
def test_generating_output_is_symmetric_and_equals_conv2d(kernel_size, padding):
    """Theorem 1, and the layer equals a stock Conv2D with its expanded kernel."""
    rng = np.random.default_rng(kernel_size)
    x = rng.normal(size=(2, 10, 3)).astype("float32")
    pairs = ks.SelfCartesian()(x)
    np.testing.assert_array_equal(_np(pairs), _self_cartesian(x))
    layer = ks.SymmetryGenerating2D(5, kernel_size, padding=padding, bias_initializer="ones")
    z = _np(layer(pairs))
    np.testing.assert_allclose(z, z.transpose(0, 2, 1, 3), atol=1e-5)
    np.testing.assert_allclose(_np(layer.to_conv2d()(pairs)), z, rtol=1e-5, atol=1e-5)
    # fused: the same function from the sequence, with the same weights
    fused = ks.FusedSymmetryGenerating2D(5, kernel_size, padding=padding)
    fused.build(x.shape)
    fused.set_weights(layer.get_weights())
    np.testing.assert_allclose(_np(fused(x)), z, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("compute", ["auto", "full"])
def test_preserving_output_is_symmetric_and_equals_conv2d(compute):
    rng = np.random.default_rng(1)
    x = _symmetric(rng, (2, 12, 12, 4))
    layer = ks.SymmetryPreserving2D(3, 5, dilation_rate=2, compute=compute, activation="tanh")
    z = _np(layer(x))
    np.testing.assert_allclose(z, z.transpose(0, 2, 1, 3), atol=1e-5)
    np.testing.assert_allclose(_np(layer.to_conv2d()(x)), z, rtol=1e-5, atol=1e-5)
    kernel = _np(layer.kernel)
    np.testing.assert_array_equal(kernel, kernel.transpose(1, 0, 2, 3))
    assert layer.count_params() == slots.num_kernel_params(5, 4, 3, False) + 3


@pytest.mark.parametrize(
    "padding, layout", [("same", "full"), ("valid", "full"), ("same", "upper")]
)
def test_triangular_blocks_equal_the_full_convolution(padding, layout):
    """compute="triangular" (blocks of the upper triangle) against compute="full":
    the output, the packed kernel's gradient and the input gradient's
    symmetric part, for a symmetric input and an upstream gradient that is not."""
    rng = np.random.default_rng(6)
    x = _symmetric(rng, (2, 40, 40, 3))
    side = 40 if padding == "same" else 36
    g = rng.normal(size=(2, side, side, 4)).astype("float32")
    kwargs = dict(dilation_rate=2, padding=padding, bias_initializer="ones")
    full = ks.SymmetryPreserving2D(4, 3, compute="full", **kwargs)
    blocks = ks.SymmetryPreserving2D(4, 3, compute="triangular", layout=layout, **kwargs)
    full.build(x.shape)
    blocks.build(x.shape if layout == "full" else (2, 40 * 41 // 2, 3))
    blocks.set_weights(full.get_weights())

    def run(layer, upper):
        var = keras.Variable(x)

        def output():
            data = keras.ops.add(
                var, 0.0
            )  # a tensor (TensorFlow's custom gradients take no variables)
            if not upper:
                return layer(data)
            return ks.FromUpper()(layer(ks.ToUpper()(data)))

        upstream = keras.ops.convert_to_tensor(g)
        grads = _gradient(lambda: keras.ops.sum(output() * upstream), [layer.packed_kernel, var])
        return _np(keras.ops.stop_gradient(output())), grads

    want, (want_kernel, want_input) = run(full, False)
    got, (got_kernel, got_input) = run(blocks, layout == "upper")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(got, got.transpose(0, 2, 1, 3))
    np.testing.assert_allclose(got_kernel, want_kernel, rtol=1e-4, atol=1e-3)

    def sym(a):
        return 0.5 * (a + a.transpose(0, 2, 1, 3))

    np.testing.assert_allclose(sym(got_input), sym(want_input), rtol=1e-4, atol=1e-4)


#: (side, kernel size, dilation, padding, strips, splits): odd and even
#: kernels, "same" and "valid", pieces and strips of several heights.
_TORCH_PLANS = [(70, 3, 1, "same", 3, 2), (61, 4, 2, "same", 2, 3), (50, 3, 2, "valid", 4, 1)]


@pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch blocks run on the torch backend only")
@pytest.mark.parametrize("side, kernel_size, dilation, padding, strips, splits", _TORCH_PLANS)
def test_torch_blocks_equal_the_keras_ops_blocks(
    monkeypatch, side, kernel_size, dilation, padding, strips, splits
):
    """The PyTorch autograd function (blocks written in place, gradient written
    out) against the same blocks in keras.ops under PyTorch's autodiff: the
    output (bitwise symmetric), the kernel gradient and the whole input
    gradient, for an upstream gradient that is not symmetric."""
    import torch

    from keras_symconv.ops import geometry, portable

    rng = np.random.default_rng(side)
    x = _symmetric(rng, (2, side, side, 3))
    half = rng.normal(size=(kernel_size, kernel_size, 3, 5)).astype("float32")
    kernel = half + half.transpose(1, 0, 2, 3)
    spec = geometry.Spec(kernel_size, dilation=dilation, padding=padding)
    out_side = spec.output_side(side)
    g = torch.tensor(rng.normal(size=(2, out_side, out_side, 5)).astype("float32"))

    def run(in_place):
        monkeypatch.setattr(portable, "_TORCH_BLOCKS", in_place)
        xt = torch.tensor(x, requires_grad=True)
        kt = torch.tensor(kernel, requires_grad=True)
        y = portable.triangular_conv(xt, kt, None, spec, strips, splits)
        grads = torch.autograd.grad((y * g).sum(), [xt, kt])
        return [t.detach().numpy() for t in (y, *grads)]

    want, want_x, want_kernel = run(False)
    got, got_x, got_kernel = run(True)
    np.testing.assert_array_equal(got, got.transpose(0, 2, 1, 3))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got_kernel, want_kernel, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(got_x, want_x, rtol=1e-4, atol=1e-4)
    # and the reference itself: the full convolution of the symmetric input
    full = keras.ops.conv(x, kernel, padding=padding, dilation_rate=dilation)
    np.testing.assert_allclose(got, _np(full), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch blocks run on the torch backend only")
@pytest.mark.parametrize("side, kernel_size, dilation, padding, strips, splits", _TORCH_PLANS)
def test_torch_upper_blocks_equal_the_keras_ops_blocks(
    monkeypatch, side, kernel_size, dilation, padding, strips, splits
):
    """The upper layout's PyTorch function (windows gathered from the upper
    triangle, outputs written to it) against keras.ops (the full map from the
    upper layout, the blocks, the upper entries read back) under PyTorch's
    autodiff: output, kernel gradient and input gradient."""
    import torch

    from keras_symconv.ops import geometry, portable, torch_blocks

    rng = np.random.default_rng(side + 1)
    n = side * (side + 1) // 2
    x = rng.normal(size=(2, n, 3)).astype("float32")
    half = rng.normal(size=(kernel_size, kernel_size, 3, 5)).astype("float32")
    kernel = half + half.transpose(1, 0, 2, 3)
    spec = geometry.Spec(kernel_size, dilation=dilation, padding=padding, layout="upper")
    out_side = spec.output_side(side)
    g = torch.tensor(rng.normal(size=(2, out_side * (out_side + 1) // 2, 5)).astype("float32"))

    def run(f):
        xt = torch.tensor(x, requires_grad=True)
        kt = torch.tensor(kernel, requires_grad=True)
        y = f(xt, kt)
        grads = torch.autograd.grad((y * g).sum(), [xt, kt])
        return [t.detach().numpy() for t in (y, *grads)]

    def reference(xt, kt):
        monkeypatch.setattr(portable, "_TORCH_BLOCKS", False)
        full = portable.from_upper(xt)
        return portable.triangular_conv(full, kt, None, spec, strips, splits, layout="upper")

    got = run(lambda xt, kt: torch_blocks.upper_conv(xt, kt, spec, strips, splits))
    want = run(reference)
    for got_part, want_part in zip(got, want, strict=True):
        np.testing.assert_allclose(got_part, want_part, rtol=1e-4, atol=1e-4)
    # and the reference itself: the full convolution's upper triangle
    full = keras.ops.conv(
        _np(portable.from_upper(x)), kernel, padding=padding, dilation_rate=dilation
    )
    np.testing.assert_allclose(got[0], _np(portable.to_upper(full)), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch convolution runs on torch only")
@pytest.mark.parametrize(
    "kernel_size, strides, dilation, padding",
    [
        (3, 1, 1, "same"),
        (4, 1, 2, "same"),
        (4, 2, 1, "same"),
        (5, 3, 1, "same"),
        (3, 2, 2, "valid"),
    ],
)
def test_torch_whole_map_conv_equals_keras_ops_conv(kernel_size, strides, dilation, padding):
    """The channels-last PyTorch convolution against keras.ops.conv (TensorFlow's
    "same" padding, the extra entry after): output and both gradients."""
    import torch

    from keras_symconv.ops import torch_blocks

    rng = np.random.default_rng(kernel_size + strides)
    x = rng.normal(size=(2, 11, 13, 3)).astype("float32")
    kernel = rng.normal(size=(kernel_size, kernel_size, 3, 4)).astype("float32")

    def run(f):
        xt = torch.tensor(x, requires_grad=True)
        kt = torch.tensor(kernel, requires_grad=True)
        y = f(xt, kt)
        g = torch.tensor(np.random.default_rng(0).normal(size=tuple(y.shape)).astype("float32"))
        return [t.detach().numpy() for t in (y, *torch.autograd.grad((y * g).sum(), [xt, kt]))]

    want = run(lambda a, k: keras.ops.conv(a, k, strides, padding, dilation_rate=dilation))
    got = run(lambda a, k: torch_blocks.conv(a, k, strides, dilation, padding))
    for got_part, want_part in zip(got, want, strict=True):
        np.testing.assert_allclose(got_part, want_part, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("generating", [False, True])
def test_packed_gradient_is_the_update_rule(generating):
    """Autodiff through the layer equals eqs. 3 / 5 applied to the full kernel's gradient."""
    rng = np.random.default_rng(2)
    c, channels, filters = 3, 2, 3
    if generating:
        layer = ks.SymmetryGenerating2D(filters, c)
        x = _self_cartesian(rng.normal(size=(2, 7, channels)).astype("float32"))
    else:
        layer = ks.SymmetryPreserving2D(filters, c)
        x = _symmetric(rng, (2, 7, 7, channels))
    layer.build(x.shape)
    target = keras.ops.convert_to_tensor(rng.normal(size=(2, 7, 7, filters)).astype("float32"))
    (packed_grad,) = _gradient(lambda: keras.ops.sum(layer(x) * target), [layer.packed_kernel])
    # the full kernel's gradient, by autodiff of a stock Conv2D
    conv = layer.to_conv2d()
    full_grad = _gradient(lambda: keras.ops.sum(conv(x) * target), [conv.kernel])[0]
    flat = full_grad.reshape(c * c, *full_grad.shape[2:])
    if generating:
        flat = flat[:, :channels] + flat[:, channels:]  # eq. 3
    want = np.zeros_like(packed_grad)
    np.add.at(want, slots.symmetric_index_map(c), flat)  # eq. 5
    np.testing.assert_allclose(packed_grad, want, rtol=1e-4, atol=1e-4)


def test_upper_layout_equals_full_layout():
    rng = np.random.default_rng(3)
    x = _symmetric(rng, (2, 9, 9, 3))
    up = ks.ToUpper()(x)
    assert tuple(up.shape) == (2, 45, 3)
    np.testing.assert_array_equal(_np(ks.FromUpper()(up)), x)
    full = ks.SymmetryPreserving2D(4, 3)
    upper = ks.SymmetryPreserving2D(4, 3, layout="upper")
    want = full(x)
    upper.build(up.shape)
    upper.set_weights(full.get_weights())
    np.testing.assert_allclose(_np(ks.FromUpper()(upper(up))), _np(want), rtol=1e-5, atol=1e-5)
    # batch norm with the full map's statistics
    bn, upper_bn = keras.layers.BatchNormalization(), ks.UpperBatchNormalization()
    want = _np(bn(x, training=True))
    got = _np(ks.FromUpper()(upper_bn(up, training=True)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(_np(upper_bn.moving_mean), _np(bn.moving_mean), atol=1e-5)
    np.testing.assert_allclose(_np(upper_bn.moving_variance), _np(bn.moving_variance), atol=1e-4)


def _tiny_model():
    inputs = keras.Input((None, 4))
    h = ks.FusedSymmetryGenerating2D(6, 1, layout="upper")(inputs)
    h = ks.UpperBatchNormalization()(h)
    h = keras.layers.Activation("relu")(h)
    a = ks.SymmetryPreserving2D(4, 3, layout="upper")(h)
    b = ks.SymmetryPreserving2D(4, 5, layout="upper")(ks.RunAfter()([h, a]))
    h = keras.layers.Concatenate()([a, b])
    h = ks.SymmetryPreserving2D(1, 3, layout="upper", activation="sigmoid")(h)
    return keras.Model(inputs, ks.FromUpper()(h))


def test_fit_learns_pairs_and_keeps_the_maps_symmetric(tmp_path):
    rng = np.random.default_rng(4)
    tokens = rng.integers(0, 4, size=(32, 12))
    x = np.eye(4, dtype="float32")[tokens]
    # pairs of complementary tokens (0-3, 1-2): a rule the first layer can see
    target = (tokens[:, :, None] + tokens[:, None, :] == 3).astype("float32")[..., None]
    rate = target.mean()
    constant = -(rate * np.log(rate) + (1 - rate) * np.log(1 - rate))  # best constant's loss
    model = _tiny_model()
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    history = model.fit(x, target, batch_size=8, epochs=15, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * constant, (losses, constant)
    y = model.predict(x[:2], verbose=0)
    assert ks.asymmetry(y) < 1e-5
    # a .keras file round trip, in safe mode
    path = str(tmp_path / "tiny.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x[:2], verbose=0), y, rtol=1e-5, atol=1e-6)


def test_bad_arguments_and_inputs_are_named():
    with pytest.raises(ValueError, match="kernel_size"):
        ks.SymmetryPreserving2D(4, (3, 5))
    with pytest.raises(ValueError, match="layout"):
        ks.SymmetryPreserving2D(4, 3, layout="lower")
    with pytest.raises(ValueError, match="even channel count"):
        ks.SymmetryGenerating2D(4, 3)(np.zeros((1, 5, 5, 3), "float32"))
    with pytest.raises(ValueError, match="square"):
        ks.SymmetryPreserving2D(4, 3)(np.zeros((1, 5, 6, 2), "float32"))
    with pytest.raises(ValueError, match="upper layout"):
        ks.FromUpper()(np.zeros((1, 7, 2), "float32"))


def _last_lines_on(backend, code, folder, count=1):
    """Run ``code`` in a fresh Python on ``backend``; its last ``count`` printed lines.

    It runs in ``folder`` so that it imports the installed package, not the
    source folder beside the tests.
    """
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()[-count:]


def _last_line_on(backend, code, folder):
    return _last_lines_on(backend, code, folder)[0]


def test_import_does_not_load_tensorflow_on_jax(tmp_path):
    pytest.importorskip("jax")
    code = "import sys, keras_symconv; print('tensorflow' in sys.modules)"
    assert _last_line_on("jax", code, tmp_path) == "False"


def test_tensorflow_only_parts_name_the_backend_when_it_is_missing(tmp_path):
    # TensorFlow made unimportable: the layers, losses and readers still work;
    # what is written with TensorFlow says so, naming itself and the backend.
    pytest.importorskip("jax")
    code = (
        "import sys; sys.modules['tensorflow'] = None\n"
        "import keras_symconv\n"
        "from keras_symconv.data import synthetic_rna_dataset, to_dot_bracket\n"
        "from keras_symconv.losses import PairBinaryCrossentropy\n"
        "print(to_dot_bracket(synthetic_rna_dataset(1, 20, 20)[0]).count('('))\n"
        "print(float(PairBinaryCrossentropy()([[[0.0, 1.0], [1.0, 0.0]]], [[[0.5, 0.5], "
        "[0.5, 0.5]]])))\n"
        "for name in ('metrics', 'data.pipeline', 'data.contact', 'data.tfds_rna'):\n"
        "    try:\n"
        "        __import__('keras_symconv.' + name)\n"
        "    except ImportError as exc:\n"
        "        print(str(exc).replace(chr(10), ' '))\n"
        "    else:\n"
        "        print('imported', name)\n"
    )
    output = _last_lines_on("jax", code, tmp_path, 6)
    assert int(output[0]) > 0  # a synthetic RNA has pairs
    assert abs(float(output[1]) - 5 * np.log(2)) < 1e-5  # one true pair, weight 5
    # data.contact stops at the first module it imports that needs it.
    names = ("metrics", "data.pipeline", "data.pipeline", "data.tfds_rna")
    for line, name in zip(output[2:], names, strict=True):
        assert f"keras_symconv.{name} " in line, line
        assert "needs TensorFlow" in line and "'jax'" in line, line


def test_distributed_training_needs_the_tensorflow_backend():
    from keras_symconv import _backend
    from keras_symconv.fitting import fit_multiworker, make_strategy

    if _backend.TENSORFLOW:
        assert make_strategy("default").num_replicas_in_sync == 1
        return
    with pytest.raises(_backend.BackendError, match=f"TensorFlow backend.*'{_backend.NAME}'"):
        make_strategy("default")
    with pytest.raises(_backend.BackendError, match="multi-worker"):
        fit_multiworker(None, None, None, 1, None, None)


def test_paper_builders_have_the_paper_sizes():
    from keras_symconv.models import build_cosrec, build_rna_cnn, build_rna_scnn, build_scosrec

    def trainable(model):
        return sum(int(np.prod(w.shape)) for w in model.trainable_weights)

    assert trainable(build_rna_scnn()) == 239_318
    assert trainable(build_rna_cnn()) == 389_538
    assert trainable(build_scosrec(6040, 3417)) == 1_731_209
    assert trainable(build_cosrec(6040, 3417)) == 1_983_369


def test_rna_builders_fit_predict_and_save(tmp_path):
    from keras_symconv.models import build_rna_cnn, build_rna_scnn

    rng = np.random.default_rng(5)
    x = np.eye(5, dtype="float32")[rng.integers(0, 5, (4, 16))]
    y = (rng.random((4, 16, 16, 1)) < 0.1).astype("float32")
    y = np.maximum(y, y.transpose(0, 2, 1, 3))
    for build in (build_rna_scnn, build_rna_cnn):
        model = build(**RNA_TINY)
        model.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy")
        model.fit(x, y, batch_size=2, epochs=1, verbose=0)
        p = model.predict(x, verbose=0)
        assert p.shape == (4, 16, 16, 1) and np.all((p >= 0) & (p <= 1))
        if build is build_rna_scnn:
            assert ks.asymmetry(p) < 1e-6
        path = str(tmp_path / f"{model.name}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        np.testing.assert_allclose(loaded.predict(x, verbose=0), p, rtol=1e-5, atol=1e-6)


def test_contact_and_recommender_builders_run():
    from keras_symconv.models import build_contact_scnn, build_scosrec

    rng = np.random.default_rng(6)
    contact = build_contact_scnn(**CONTACT_TINY)
    seq = rng.normal(size=(2, 10, 25)).astype("float32")
    pair = _symmetric(rng, (2, 10, 10, 3))
    p = contact.predict([seq, pair], verbose=0)
    assert p.shape == (2, 10, 10, 1) and ks.asymmetry(p) < 1e-6
    rec = build_scosrec(7, 12, embedding_dim=6, blocks=(4, 6), fc_units=5)
    users = np.arange(4, dtype="int32")
    sequences = rng.integers(1, 12, (4, 5)).astype("int32")
    items = rng.integers(1, 12, (4, 3)).astype("int32")
    logits = rec.predict([users, sequences, items], verbose=0)
    assert logits.shape == (4, 3) and np.all(np.isfinite(logits))


@pytest.mark.parametrize("name", ["strand16s-scnn", "strand16s-cnn"])
def test_presets_load_in_safe_mode_and_predict(name):
    from keras_symconv import pretrained

    model = pretrained.load_preset(name)
    x = np.eye(5, dtype="float32")[np.random.default_rng(7).integers(0, 4, (1, 30))]
    p = model.predict(x, verbose=0)
    assert p.shape == (1, 30, 30, 1) and np.all((p >= 0) & (p <= 1))
    if name.endswith("scnn"):
        np.testing.assert_array_equal(p, p.transpose(0, 2, 1, 3))


_SAVE_ON_OTHER_BACKEND = """
import sys
import keras, numpy as np
import keras_symconv as ks
sys.path.insert(0, {tests!r})
from test_backends import _tiny_model
keras.utils.set_random_seed(0)
model = _tiny_model()
x = np.eye(4, dtype="float32")[np.random.default_rng(0).integers(0, 4, (2, 11))]
model.save({path!r})
np.savez({arrays!r}, x=x, y=model.predict(x, verbose=0))
print(keras.backend.backend())
"""


@pytest.mark.parametrize("other", [b for b in ("tensorflow", "jax", "torch") if b != BACKEND])
def test_a_file_saved_on_another_backend_loads_here_with_the_same_outputs(tmp_path, other):
    # Run on each of the three backends, this covers their six ordered pairs.
    pytest.importorskip(other)
    path, arrays = str(tmp_path / "other.keras"), str(tmp_path / "other.npz")
    code = _SAVE_ON_OTHER_BACKEND.format(
        tests=os.path.dirname(os.path.abspath(__file__)), path=path, arrays=arrays
    )
    assert _last_line_on(other, code, tmp_path) == other
    model = keras.saving.load_model(path, safe_mode=True)
    saved = np.load(arrays)
    np.testing.assert_allclose(
        model.predict(saved["x"], verbose=0), saved["y"], rtol=1e-5, atol=1e-6
    )


def test_the_readme_example_runs_here():
    """README.md's example, as printed there, builds, fits and gives symmetric maps."""
    readme = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")
    if not os.path.exists(readme):
        pytest.skip("README.md is not beside the tests (installed tests)")
    with open(readme) as handle:
        text = handle.read()
    example = text.split("## Example", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    scope = {}
    exec(compile(example, "README.md (example)", "exec"), scope)
    model = scope["model"]
    rng = np.random.default_rng(7)
    x = np.eye(5, dtype="float32")[rng.integers(0, 5, (4, 9))]
    y = (rng.random((4, 9, 9, 1)) < 0.2).astype("float32")
    y = np.maximum(y, y.transpose(0, 2, 1, 3))
    history = model.fit(x, y, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    maps = model.predict(x, verbose=0)
    assert maps.shape == (4, 9, 9, 1) and ks.asymmetry(maps) < 1e-5
