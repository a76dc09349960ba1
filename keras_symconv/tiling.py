"""Pair maps of long sequences, computed tile by tile.

A pair-map network's memory grows with ``L^2``: a whole 10,000-nt map does
not fit a small machine. The networks this package builds have two parts:
sequence layers (embeddings, the BiLSTM: cheap, and some of them see the
whole sequence) and pair layers (convolutions with ``"same"`` padding,
batch norm, activations, concatenations: each output entry depends only on
a window of its input). :class:`TiledPredictor` runs the sequence layers
once on the whole sequence, then the pair layers on one tile of the map at a
time: a tile's rows and columns are widened by the pair layers' receptive
radius (the *halo*), the pair input of that window is built from the
sequence features (``x[rows] x x[cols]``, the product
:class:`~keras_symconv.SelfCartesian` takes along the diagonal), and only
the tile's interior is kept. Where the window meets the map's edge it is the
map's edge, so zero padding there is the untiled model's too, and the result
equals the untiled prediction to float32 rounding.

A tile off the diagonal is not a symmetric map, so the symmetric
convolutions run there as ordinary convolutions with their full kernels
(:attr:`~keras_symconv.SymmetryPreserving2D.kernel`), and maps stay in the
full layout (``ToUpper`` / ``FromUpper`` are identities on tiles,
``UpperBatchNormalization`` is its inference affine map). When every pair
layer keeps the symmetry (the SCNN builders), only the tiles on and above
the diagonal are computed and mirrored, half of the map's work; otherwise
(plain CNNs) every tile is. A final ``Symmetrize`` averages the assembled
map with its transpose.

Inference only (batch-norm moving statistics), batch size 1, any Keras
backend. Layers the walk does not know at the pair level raise
``ValueError`` naming them.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from keras_symconv import layers

__all__ = ["TiledPredictor", "predict_tiled", "available_memory"]

_SYMMETRIC_CONVS = (layers.SymmetryGenerating2D, layers.SymmetryPreserving2D)
# Layers that make a pair map from sequence features.
_PRODUCERS = (layers.SelfCartesian, layers.FusedSymmetryGenerating2D)
# Layers that act on each map entry (or each entry's channels) alone.
_POINTWISE = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.Concatenate,
    keras.layers.Add,
    keras.layers.Multiply,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise,
    keras.layers.GaussianDropout,
)


def _convolves_whole_map(layer):
    """Whether ``layer`` convolves a whole map at once with a kernel larger than 1."""
    if type(layer) is keras.layers.Conv2D:
        return max(layer.kernel_size) > 1
    if isinstance(layer, layers.SymmetryPreserving2D):
        return layer.layout == "full" and layer.kernel_size > 1
    if isinstance(layer, layers.SymmetryGenerating2D):
        return layer.kernel_size > 1  # computed whole, then packed in either layout
    return False


def _radius(layer):
    """How far (in map entries) one output entry of ``layer`` reaches into its input."""
    if isinstance(layer, (*_SYMMETRIC_CONVS, layers.FusedSymmetryGenerating2D)):
        if layer.strides != 1 or layer.padding != "same":
            raise ValueError(
                f"tiled prediction needs stride 1 and 'same' padding; layer {layer.name!r} "
                f"has strides={layer.strides}, padding={layer.padding!r}"
            )
        return layer.dilation_rate * (layer.kernel_size - 1) // 2
    if isinstance(layer, keras.layers.Conv2D):
        if tuple(layer.strides) != (1, 1) or layer.padding != "same":
            raise ValueError(
                f"tiled prediction needs stride 1 and 'same' padding; layer {layer.name!r} "
                f"has strides={layer.strides}, padding={layer.padding!r}"
            )
        return max(
            d * (k - 1) // 2 for k, d in zip(layer.kernel_size, layer.dilation_rate, strict=True)
        )
    return 0


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


class TiledPredictor:
    """Predict a pair-map network's output tile by tile (see the module docstring).

    Args:
        model: a Functional model: sequence inputs ``(batch, L, n)`` and
            optionally pair inputs ``(batch, L, L, c)`` (assumed symmetric,
            as the symmetric networks assume them), output ``(batch, L, L,
            k)``. Any layout and compute of this package's builders.
        tile_size: side of the tiles the map is computed in (the halo comes
            on top of it).

    Attributes:
        halo: the pair layers' receptive radius, in map entries.
        symmetric: whether only the upper tiles are computed and mirrored.
        pair_channels: the most channels of pair maps alive at once when the
            layers run in order (each map freed after its last reader).
        whole_map_convs: whether a layer convolves the whole map at once
            with a kernel larger than 1 (a plain ``Conv2D``, or a symmetric
            convolution computing the full map), which :meth:`should_tile`
            limits to :attr:`MAX_WHOLE_CONV_SIDE`.

    Raises:
        ValueError: a layer of the pair part that cannot be run on a tile,
            or a layer called more than once.

    Example:

    >>> from keras_symconv.models import build_rna_scnn
    >>> import numpy as np
    >>> model = build_rna_scnn()
    >>> tiled = TiledPredictor(model, tile_size=16)
    >>> tiled.halo, tiled.symmetric
    (13, True)
    >>> x = np.eye(5, dtype="float32")[np.random.default_rng(0).integers(0, 4, 40)]
    >>> out = tiled([x[None]])
    >>> out.shape
    (40, 40, 1)
    >>> float(np.abs(out - model.predict(x[None], verbose=0)[0]).max()) < 1e-4
    True
    """

    #: Longest side predicted whole when a layer convolves the whole map at
    #: once: beyond it TensorFlow's CPU convolution can fail to allocate and
    #: abort the process even with memory free (RESULTS.md, long sequences).
    #: Strip and block convolutions (the symmetric layers' upper layout and
    #: triangular compute) never see the whole map.
    MAX_WHOLE_CONV_SIDE = 3000

    def __init__(self, model, tile_size: int = 1024):
        if not isinstance(tile_size, int) or tile_size < 1:
            raise ValueError(
                f"Argument `tile_size` must be a positive int. Received: {tile_size!r}"
            )
        self.model = model
        self.tile_size = tile_size
        self._plan()

    # -- the graph ---------------------------------------------------------

    def _plan(self):
        model = self.model
        inputs = _as_list(model.inputs)
        self._input_ids = [id(t) for t in inputs]
        tensors = {id(t): t for t in inputs}
        pair = {id(t) for t in inputs if len(t.shape) == 4}
        symmetric = {id(t): True for t in inputs if len(t.shape) == 4}
        radius = {id(t): 0 for t in inputs}
        steps = []  # (layer, input ids, output id, is_pair)
        known = set(self._input_ids)
        outputs = _as_list(model.outputs)
        if len(outputs) != 1:
            raise ValueError(
                f"tiled prediction needs a model with one output; {model.name!r} has {len(outputs)}"
            )
        pending = [
            layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)
        ]
        while pending:
            progressed = False
            for layer in list(pending):
                try:
                    ins, out = _as_list(layer.input), layer.output
                except (AttributeError, ValueError) as exc:
                    raise ValueError(
                        f"tiled prediction needs each layer called once; {layer.name!r}: {exc}"
                    ) from exc
                ids = [id(t) for t in ins]
                if not all(i in known for i in ids):
                    continue
                pending.remove(layer)
                progressed = True
                is_pair = isinstance(layer, _PRODUCERS) or any(i in pair for i in ids)
                if is_pair:
                    self._check_pair_layer(layer)
                    pair.add(id(out))
                    # RunAfter passes its first input on; the second only orders.
                    reach = ids[:1] if isinstance(layer, layers.RunAfter) else ids
                    radius[id(out)] = max(radius.get(i, 0) for i in reach) + _radius(layer)
                    symmetric[id(out)] = self._keeps_symmetry(
                        layer, [symmetric.get(i) for i in ids]
                    )
                steps.append((layer, ids, id(out), is_pair))
                known.add(id(out))
                tensors[id(out)] = out
            if not progressed:
                names = ", ".join(repr(layer.name) for layer in pending)
                raise ValueError(f"tiled prediction cannot order the layers {names}")
        out_id = id(outputs[0])
        if out_id not in pair:
            raise ValueError(f"the output of {model.name!r} is not a pair map")
        self._symmetrize_last = isinstance(steps[-1][0], layers.Symmetrize)
        if any(isinstance(s[0], layers.Symmetrize) for s in steps[:-1]):
            raise ValueError("tiled prediction supports Symmetrize only as the last layer")
        if self._symmetrize_last:
            steps = steps[:-1]
            out_id = steps[-1][2]
        self._steps = steps
        self._out_id = out_id
        self._pair_inputs = [k for k, i in enumerate(self._input_ids) if i in pair]
        self.halo = radius[out_id]
        self.symmetric = bool(symmetric.get(out_id))
        # How many steps read each value: a tile's maps are freed after their last reader.
        self._readers = {}
        for _, ids, _, is_pair in steps:
            if is_pair:
                for i in ids:
                    self._readers[i] = self._readers.get(i, 0) + 1
        self._converted = {}
        self.pair_channels = self._peak_channels()
        self.whole_map_convs = any(
            is_pair and _convolves_whole_map(layer) for layer, _, _, is_pair in steps
        )
        # The sequence tensors the pair layers read, from one compiled
        # sub-model (eager recurrent layers step in Python, far slower).
        wanted = []
        for _, ids, _, is_pair in steps:
            for i in ids if is_pair else ():
                if i not in pair and i not in wanted:
                    wanted.append(i)
        self._sequence_ids = [i for i in wanted if i not in self._input_ids]
        self._sequence_inputs = [k for k, i in enumerate(self._input_ids) if i not in pair]
        self._sequence_model = None
        if self._sequence_ids:
            ins = [inputs[k] for k in self._sequence_inputs]
            self._sequence_model = keras.Model(
                ins if len(ins) > 1 else ins[0], [tensors[i] for i in self._sequence_ids]
            )

    def _peak_channels(self):
        """Most channels of pair maps alive at once when the steps run in order."""
        readers = dict(self._readers)
        channels = {i: 0 for i in self._input_ids}
        for k, i in enumerate(self._input_ids):
            shape = _as_list(self.model.inputs)[k].shape
            if len(shape) == 4:
                channels[i] = int(shape[-1])
        alive = {i for i in self._input_ids if channels[i]}
        peak = sum(channels[i] for i in alive)
        for layer, ids, out, is_pair in self._steps:
            if not is_pair:
                continue
            channels[out] = int(layer.output.shape[-1])
            alive.add(out)
            peak = max(peak, sum(channels[i] for i in alive))
            for i in ids:
                readers[i] -= 1
                if readers[i] == 0:
                    alive.discard(i)
        return peak

    @staticmethod
    def _check_pair_layer(layer):
        known = (
            layers.SelfCartesian,
            layers.FusedSymmetryGenerating2D,
            *_SYMMETRIC_CONVS,
            keras.layers.Conv2D,
            keras.layers.BatchNormalization,
            layers.ToUpper,
            layers.FromUpper,
            layers.RunAfter,
            layers.Symmetrize,
            *_POINTWISE,
        )
        if not isinstance(layer, known):
            raise ValueError(
                f"tiled prediction cannot run layer {layer.name!r} ({type(layer).__name__}) "
                "on a tile of the pair map"
            )
        if isinstance(layer, keras.layers.Conv2D) and type(layer) is not keras.layers.Conv2D:
            raise ValueError(
                f"tiled prediction cannot run layer {layer.name!r} ({type(layer).__name__}) "
                "on a tile of the pair map"
            )
        _radius(layer)

    @staticmethod
    def _keeps_symmetry(layer, inputs):
        if isinstance(layer, (*_PRODUCERS[1:], layers.SymmetryGenerating2D, layers.Symmetrize)):
            return True
        if isinstance(layer, layers.SelfCartesian):
            return False  # (x_i, x_j) and (x_j, x_i) differ: symmetric after a generating conv
        if isinstance(layer, keras.layers.Conv2D):
            return False
        if isinstance(layer, layers.RunAfter):
            return bool(inputs[0])
        return all(bool(s) for s in inputs if s is not None)

    def untiled_bytes(self, length: int) -> int:
        """An estimate of the memory an untiled prediction of ``length`` holds.

        4 bytes per channel of :attr:`pair_channels` over the whole map.
        """
        return 4 * self.pair_channels * length * length

    def should_tile(self, length: int, memory: int | None = None, fraction: float = 0.4) -> bool:
        """Whether to predict ``length`` in tiles.

        Yes when :meth:`untiled_bytes` exceeds ``fraction`` of ``memory``
        (default :func:`available_memory`; unknown memory never tiles on this
        ground), or when ``length`` is over :attr:`MAX_WHOLE_CONV_SIDE` and
        :attr:`whole_map_convs`.
        """
        if self.whole_map_convs and length > self.MAX_WHOLE_CONV_SIDE:
            return True
        memory = available_memory() if memory is None else memory
        return memory is not None and self.untiled_bytes(length) > fraction * memory

    # -- one tile ------------------------------------------------------------

    def _full_kernel(self, layer, dtype):
        key = (id(layer), dtype)
        if key not in self._converted:
            kernel = keras.ops.convert_to_numpy(layer.kernel)
            bias = keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else None
            self._converted[key] = (
                keras.ops.convert_to_tensor(kernel.astype(dtype)),
                None if bias is None else keras.ops.convert_to_tensor(bias.astype(dtype)),
            )
        return self._converted[key]

    def _conv(self, layer, x):
        kernel, bias = self._full_kernel(layer, keras.backend.standardize_dtype(x.dtype))
        y = keras.ops.conv(x, kernel, 1, "same", dilation_rate=layer.dilation_rate)
        if bias is not None:
            y = y + bias
        return layer.activation(y) if layer.activation is not None else y

    @staticmethod
    def _cross(x, rows, cols):
        """``(1, len(rows), len(cols), 2n)``: ``concat(x[r], x[c])`` for each pair."""
        a = x[:, rows[0] : rows[1]]
        b = x[:, cols[0] : cols[1]]
        shape = (1, rows[1] - rows[0], cols[1] - cols[0], x.shape[-1])
        a = keras.ops.broadcast_to(a[:, :, None, :], shape)
        b = keras.ops.broadcast_to(b[:, None, :, :], shape)
        return keras.ops.concatenate([a, b], axis=-1)

    def _run_pair_layer(self, layer, values, rows, cols):
        if isinstance(layer, layers.SelfCartesian):
            return self._cross(values[0], rows, cols)
        if isinstance(layer, layers.FusedSymmetryGenerating2D):
            x = keras.ops.cast(values[0], layer.compute_dtype)
            return self._conv(layer, self._cross(x, rows, cols))
        if isinstance(layer, _SYMMETRIC_CONVS):
            return self._conv(layer, keras.ops.cast(values[0], layer.compute_dtype))
        if isinstance(layer, (layers.ToUpper, layers.FromUpper)):
            return values[0]
        if isinstance(layer, layers.RunAfter):
            return values[0]
        if isinstance(layer, layers.UpperBatchNormalization):
            x = keras.ops.cast(values[0], "float32")
            y = keras.ops.batch_normalization(
                x,
                keras.ops.cast(layer.moving_mean, "float32"),
                keras.ops.cast(layer.moving_variance, "float32"),
                axis=-1,
                offset=keras.ops.cast(layer.beta, "float32") if layer.center else None,
                scale=keras.ops.cast(layer.gamma, "float32") if layer.scale else None,
                epsilon=layer.epsilon,
            )
            return keras.ops.cast(y, layer.compute_dtype)
        x = values if isinstance(layer.input, (list, tuple)) else values[0]
        return layer(x, training=False) if _takes_training(layer) else layer(x)

    def _tile(self, sequence_values, pair_inputs, rows, cols):
        values = dict(sequence_values)
        for k, array in pair_inputs.items():
            values[self._input_ids[k]] = array[:, rows[0] : rows[1], cols[0] : cols[1]]
        readers = dict(self._readers)
        for layer, ids, out, is_pair in self._steps:
            if not is_pair:
                continue
            values[out] = self._run_pair_layer(layer, [values[i] for i in ids], rows, cols)
            for i in ids:
                readers[i] -= 1
                if readers[i] == 0 and i not in sequence_values:
                    del values[i]
        return keras.ops.convert_to_numpy(keras.ops.cast(values[self._out_id], "float32"))[0]

    # -- the whole map -----------------------------------------------------------

    def __call__(self, inputs):
        """The output map ``(L, L, k)`` (NumPy float32) for inputs with batch size 1."""
        inputs = _as_list(inputs)
        if len(inputs) != len(self._input_ids):
            raise ValueError(
                f"{self.model.name!r} takes {len(self._input_ids)} inputs. Received: {len(inputs)}"
            )
        arrays = [np.asarray(a, np.float32) for a in inputs]
        inputs = [keras.ops.convert_to_tensor(a) for a in arrays]
        if any(a.shape[0] != 1 for a in inputs):
            raise ValueError(
                "tiled prediction takes one sequence (batch size 1). Received: batch sizes "
                f"{[int(a.shape[0]) for a in inputs]}"
            )
        length = int(inputs[0].shape[1])
        sequence_values = {i: a for i, a in zip(self._input_ids, inputs, strict=True)}
        if self._sequence_model is not None:
            x = [arrays[k] for k in self._sequence_inputs]
            computed = self._sequence_model.predict_on_batch(x if len(x) > 1 else x[0])
            for i, value in zip(self._sequence_ids, _as_list(computed), strict=True):
                sequence_values[i] = keras.ops.convert_to_tensor(value)
        pair_inputs = {k: inputs[k] for k in self._pair_inputs}
        for k in self._pair_inputs:
            del sequence_values[self._input_ids[k]]
        size, halo = self.tile_size, self.halo
        starts = range(0, length, size)
        result = None
        for p, r0 in enumerate(starts):
            for q, c0 in enumerate(starts):
                if self.symmetric and q < p:
                    continue
                r1, c1 = min(r0 + size, length), min(c0 + size, length)
                rows = (max(0, r0 - halo), min(length, r1 + halo))
                cols = (max(0, c0 - halo), min(length, c1 + halo))
                tile = self._tile(sequence_values, pair_inputs, rows, cols)
                tile = tile[r0 - rows[0] : r1 - rows[0], c0 - cols[0] : c1 - cols[0]]
                if result is None:
                    result = np.empty((length, length, tile.shape[-1]), np.float32)
                result[r0:r1, c0:c1] = tile
                if self.symmetric and q > p:
                    result[c0:c1, r0:r1] = tile.transpose(1, 0, 2)
        if self._symmetrize_last:
            result = 0.5 * (result + result.transpose(1, 0, 2))
        return result


def _takes_training(layer):
    # Pair layers that behave differently in training: inference mode here.
    return isinstance(
        layer,
        (
            keras.layers.BatchNormalization,
            keras.layers.Dropout,
            keras.layers.SpatialDropout2D,
            keras.layers.GaussianNoise,
            keras.layers.GaussianDropout,
        ),
    )


def predict_tiled(model, inputs, tile_size: int = 1024):
    """``TiledPredictor(model, tile_size)(inputs)``: the map ``(L, L, k)`` of one sequence."""
    return TiledPredictor(model, tile_size)(inputs)


def available_memory() -> int | None:
    """Bytes of memory available now (Linux ``MemAvailable``), or ``None`` if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
