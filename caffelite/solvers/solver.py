"""Solver: the training loop of Caffe's solver.cpp — test, forward/backward, display, update, snapshot."""

import logging
import os
import time
from pathlib import Path

import numpy as np

from caffelite import diagnostics, parallel
from caffelite.errors import SolverError
from caffelite.log import number as _fmt
from caffelite.io.binary import read_solverstate, write_binary
from caffelite.io.blob import array_to_blobproto, blobproto_to_array
from caffelite.io.hdf5 import read_solverstate_hdf5, write_solverstate_hdf5
from caffelite.io.prototxt import read_net_text, read_solver_text
from caffelite.net import Net
from caffelite.phase import TEST, TRAIN
from caffelite.proto import caffe_pb2
from caffelite.registry import Registry
from caffelite.solvers.lr_policies import learning_rate

log = logging.getLogger("caffelite")
SOLVERS = Registry("solver type")

# What a signal (or any action_request callable) may ask the solver to do between iterations.
NONE, STOP, SNAPSHOT = "none", "stop", "snapshot"


class Solver:
    """Common loop; subclasses give `history_count` and `compute_update_value` (the update rule).

    `history` holds `history_count` blocks of one array per learnable param, block after block (Caffe's
    history_ vector, and the order of SolverState.history): history[block * len(params) + index].
    """

    history_count = 1

    def __init__(self, solver, dtype=np.float32, source=None):
        """`solver`: a solver prototxt path or a SolverParameter; `source` names it in errors (default: the path)."""
        self.param = solver if isinstance(solver, caffe_pb2.SolverParameter) else read_solver_text(solver)
        self.source = source or (str(solver) if isinstance(solver, (str, Path)) else "<SolverParameter>")
        self.dtype = np.dtype(dtype)
        if self.param.average_loss < 1:
            raise SolverError(f"{self.source}: average_loss must be at least 1")
        self.check_param()
        train_net_param = self._train_net_param()
        try:  # an unknown policy or a missing stepsize is the solver file's mistake: say so before building nets
            learning_rate(self.param, 0, 0)
        except SolverError as error:
            raise SolverError(f"{self.source}: {error}") from None
        if self.param.random_seed >= 0:
            parallel.seed(self.param.random_seed)  # random_seed + rank on each of several processes, as in Caffe
        self.net = Net(train_net_param, dtype=self.dtype)
        self.test_nets = [Net(p, dtype=self.dtype) for p in self._test_net_params()]
        for net in self.test_nets:
            net.debug_info = self.param.debug_info
        for weights in self.param.weights:
            self.net.copy_from(weights)
        self.iter = 0
        self.current_step = 0
        self.history = [
            np.zeros_like(p.data) for _ in range(self.history_count) for p in self.net.learnable_params
        ]
        self.callbacks = []
        self.action_request = None
        self.requested_early_exit = False
        self.smoothed_loss = 0.0
        self._losses = []
        log.info("Solver scaffolding done.")

    def check_param(self):
        """Refuse settings the update rule cannot work with (Caffe's constructor sanity checks); raise SolverError."""

    def history_block(self, block, index):
        """The history array of block `block` (0, 1, …) for learnable param `index`."""
        return self.history[block * len(self.net.learnable_params) + index]

    # -- nets -----------------------------------------------------------------------------------
    def _train_net_param(self):
        p = self.param
        given = [f for f in ("net", "net_param", "train_net", "train_net_param") if p.HasField(f)]
        if len(given) != 1:
            raise SolverError(
                f"{self.source}: a solver needs exactly one of net, net_param, train_net, train_net_param "
                f"(found {', '.join(given) or 'none'})"
            )
        field = given[0]
        net_param = getattr(p, field) if field.endswith("_param") else read_net_text(getattr(p, field))
        log.info("Creating training net from %s", field if field.endswith("_param") else getattr(p, field))
        return self._with_state(net_param, TRAIN, p.train_state)

    def _test_net_params(self):
        p = self.param
        params = list(p.test_net_param) + [read_net_text(path) for path in p.test_net]
        generic = p.net_param if p.HasField("net_param") else read_net_text(p.net) if p.HasField("net") else None
        if generic is None and len(p.test_iter) != len(params):
            raise SolverError(f"{self.source}: test_iter must be specified for each test network")
        if generic is not None:
            params += [generic] * max(0, len(p.test_iter) - len(params))
        if p.test_state and len(p.test_state) != len(params):
            raise SolverError(f"{self.source}: test_state must be unspecified or given once per test net")
        if params and p.test_interval <= 0:
            raise SolverError(f"{self.source}: test nets need test_interval > 0")
        states = list(p.test_state) or [caffe_pb2.NetState()] * len(params)
        return [self._with_state(net_param, TEST, state) for net_param, state in zip(params, states)]

    @staticmethod
    def _with_state(net_param, phase, extra_state):
        """Caffe's state merge: the phase, then the net's own state, then the solver's train/test state."""
        merged = caffe_pb2.NetParameter()
        merged.CopyFrom(net_param)
        state = caffe_pb2.NetState(phase=phase)
        state.MergeFrom(net_param.state)
        state.MergeFrom(extra_state)
        merged.state.CopyFrom(state)
        return merged

    # -- the loop -------------------------------------------------------------------------------
    def add_callback(self, callback, on_gradients_ready=None):
        """`callback` may define on_start() and on_gradients_ready(), called every iteration; or, as in pycaffe,
        give the two functions: add_callback(on_start, on_gradients_ready)."""
        if on_gradients_ready is not None:
            callback = _FunctionCallback(callback, on_gradients_ready)
        self.callbacks.append(callback)

    def share_weights(self, net):
        """pycaffe's: make `net` use the training net's param arrays (layers matched by name)."""
        net.share_with(self.net)

    @property
    def lr(self):
        """The learning rate of the current iteration (pycaffe's `solver.lr`); changes nothing."""
        return learning_rate(self.param, self.iter, self.current_step)[0]

    def _notify(self, event):
        for callback in self.callbacks:
            method = getattr(callback, event, None)
            if method:
                method()

    def _requested_action(self):
        return self.action_request() if self.action_request else NONE

    def step(self, iters):
        p = self.param
        start_iter, stop_iter = self.iter, self.iter + iters
        self._losses, self.smoothed_loss = [], 0.0
        timer, last_display_iter = time.perf_counter(), self.iter
        while self.iter < stop_iter:
            self.net.clear_param_diffs()
            if (p.test_interval and self.iter % p.test_interval == 0 and (self.iter > 0 or p.test_initialization)
                    and parallel.root_solver()):
                self.test_all()
                if self.requested_early_exit:
                    break
            self._notify("on_start")
            display = p.display and self.iter % p.display == 0
            self.net.debug_info = bool(display and p.debug_info)
            # Overflow is reported once, below, by the loss it makes: not as numpy warnings on the way.
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss = sum(self.net.forward_backward() for _ in range(p.iter_size)) / p.iter_size
                if not np.isfinite(loss):
                    self._stop_on_non_finite(loss)
            self._update_smoothed_loss(loss, start_iter)
            if display:
                lapse = time.perf_counter() - timer
                per_second = (self.iter - last_display_iter) / (lapse or 1)
                log.info(
                    "Iteration %d (%s iter/s, %ss/%d iters), loss = %s",
                    self.iter, _fmt(per_second), _fmt(lapse), p.display, _fmt(self.smoothed_loss),
                )
                timer, last_display_iter = time.perf_counter(), self.iter
                self._log_outputs(self.net, "Train", self.net.outputs, lambda name: self.net.blobs[name].data)
            self._notify("on_gradients_ready")
            self.apply_update()
            request = self._requested_action()
            if ((p.snapshot and self.iter % p.snapshot == 0) or request == SNAPSHOT) and parallel.root_solver():
                self.snapshot()
            if request == STOP:
                self.requested_early_exit = True
                break

    def _stop_on_non_finite(self, loss):
        """A NaN or Inf loss never comes back: stop, naming the first layer that went non-finite."""
        culprit = diagnostics.first_non_finite(self.net)
        where = (f"the first layer to go non-finite is '{culprit[0]}': {culprit[1]}" if culprit
                 else "no layer output is non-finite on replay")
        raise SolverError(f"{self.source}: iteration {self.iter}: the loss is {loss}; {where}. Training stopped "
                          "(a lower base_lr, clip_gradients, or debug_info: true to see each layer's values)")

    def solve(self, resume_file=None):
        p = self.param
        log.info("Solving %s", self.net.name)
        log.info("Learning Rate Policy: %s", p.lr_policy)
        self.requested_early_exit = False
        if resume_file:
            log.info("Restoring previous solver status from %s", resume_file)
            self.restore(resume_file)
        start_iter = self.iter
        self.step(p.max_iter - self.iter)
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0) and parallel.root_solver():
            self.snapshot()
        if self.requested_early_exit:
            log.info("Optimization stopped early.")
            return
        if p.display and self.iter % p.display == 0:
            loss = self.net.forward_range()
            self._update_smoothed_loss(loss, start_iter)
            log.info("Iteration %d, loss = %s", self.iter, _fmt(self.smoothed_loss))
        if p.test_interval and self.iter % p.test_interval == 0 and parallel.root_solver():
            self.test_all()
        log.info("Optimization Done.")

    def _update_smoothed_loss(self, loss, start_iter):
        window = self.param.average_loss
        if len(self._losses) < window:
            self._losses.append(loss)
            self.smoothed_loss += (loss - self.smoothed_loss) / len(self._losses)
        else:
            index = (self.iter - start_iter) % window
            self.smoothed_loss += (loss - self._losses[index]) / window
            self._losses[index] = loss

    # -- testing --------------------------------------------------------------------------------
    def test_all(self):
        """Run every test net; returns one {output name: mean score} dict per net."""
        results = []
        for index in range(len(self.test_nets)):
            if self.requested_early_exit:
                break
            results.append(self.test(index))
        return results

    def test(self, index=0):
        log.info("Iteration %d, Testing net (#%d)", self.iter, index)
        net = self.test_nets[index]
        net.share_with(self.net)
        iterations = self.param.test_iter[index]
        totals, loss = {}, 0.0
        for _ in range(iterations):
            if self._handle_requests_during_test():
                log.info("Test interrupted.")
                return {}
            iter_loss = net.forward_range()
            loss += iter_loss if self.param.test_compute_loss else 0.0
            for name in net.outputs:
                totals[name] = totals.get(name, 0.0) + net.blobs[name].data.astype(np.float64).ravel()
        if self.param.test_compute_loss:
            log.info("Test loss: %s", _fmt(loss / iterations))
        means = {name: total / iterations for name, total in totals.items()}
        self._log_outputs(net, "Test", net.outputs, lambda name: means[name])
        return {name: float(v[0]) if v.size == 1 else v for name, v in means.items()}

    def _handle_requests_during_test(self):
        request = self._requested_action()
        while request != NONE:
            if request == SNAPSHOT:
                self.snapshot()
            elif request == STOP:
                self.requested_early_exit = True
            request = self._requested_action()
        return self.requested_early_exit

    @staticmethod
    def _log_outputs(net, kind, names, values_of):
        loss_weights = net.blob_loss_weights
        score_index = 0
        for name in names:
            weight = loss_weights.get(name, 0.0)
            for value in np.ravel(values_of(name)):
                suffix = f" (* {_fmt(weight)} = {_fmt(weight * value)} loss)" if weight else ""
                log.info("    %s net output #%d: %s = %s%s", kind, score_index, name, _fmt(value), suffix)
                score_index += 1

    # -- the update -----------------------------------------------------------------------------
    def learning_rate(self):
        rate, self.current_step = learning_rate(self.param, self.iter, self.current_step)
        return rate

    def apply_update(self):
        """Caffe's ApplyUpdate: lr, clipping, then per param normalize, regularize, update; iter += 1."""
        p = self.param
        rate = self.learning_rate()
        if p.display and self.iter % p.display == 0:
            log.info("Iteration %d, lr = %s", self.iter, _fmt(rate))
        self._clip_gradients()
        for index, tensor in enumerate(self.net.learnable_params):
            if p.iter_size > 1:
                tensor.grad *= 1.0 / p.iter_size
            self._regularize(index, tensor)
            self.compute_update_value(index, tensor, rate * self.net.params_lr[index])
            tensor.data -= tensor.grad
        self.iter += 1

    def _clip_gradients(self):
        threshold = self.param.clip_gradients
        if threshold < 0:
            return
        norm = float(np.sqrt(sum(np.sum(np.square(t.grad, dtype=np.float64)) for t in self.net.learnable_params)))
        if norm > threshold:
            scale = threshold / norm
            log.info(
                "Gradient clipping: scaling down gradients (L2 norm %s > %s) by scale factor %s",
                _fmt(norm), _fmt(threshold), _fmt(scale),
            )
            for tensor in self.net.learnable_params:
                tensor.grad *= scale

    def _regularize(self, index, tensor):
        decay = self.param.weight_decay * self.net.params_weight_decay[index]
        if not decay:
            return
        kind = self.param.regularization_type
        if kind == "L2":
            tensor.grad += decay * tensor.data
        elif kind == "L1":
            tensor.grad += decay * np.sign(tensor.data)
        else:
            raise SolverError(f"{self.source}: unknown regularization_type '{kind}' (known: L1, L2)")

    def compute_update_value(self, index, tensor, rate):
        """Turn tensor.grad into the step to subtract from tensor.data (in place)."""
        raise NotImplementedError

    # -- snapshots ------------------------------------------------------------------------------
    def snapshot_filename(self, extension):
        return f"{self.param.snapshot_prefix}_iter_{self.iter}{extension}"

    def snapshot(self):
        """Write the weights then the solver state, each atomically, in snapshot_format; returns the model path.

        BINARYPROTO: {prefix}_iter_N.caffemodel + .solverstate; HDF5: .caffemodel.h5 + .solverstate.h5.
        The weights carry their diffs too when snapshot_diff is set.
        """
        p = self.param
        write_diff = p.snapshot_diff
        if p.snapshot_format == caffe_pb2.SolverParameter.HDF5:
            model_file = self.snapshot_filename(".caffemodel.h5")
            log.info("Snapshotting to HDF5 file %s", model_file)
            self.net.save_hdf5(model_file, write_diff=write_diff)
            state_file = self.snapshot_filename(".solverstate.h5")
            log.info("Snapshotting solver state to HDF5 file %s", state_file)
            write_solverstate_hdf5(state_file, self.iter, model_file, self.current_step, self.history)
            return model_file
        model_file = self.snapshot_filename(".caffemodel")
        log.info("Snapshotting to binary proto file %s", model_file)
        write_binary(self.net.to_proto(write_diff=write_diff), model_file)
        state_file = self.snapshot_filename(".solverstate")
        log.info("Snapshotting solver state to binary proto file %s", state_file)
        state = caffe_pb2.SolverState(iter=self.iter, learned_net=model_file, current_step=self.current_step)
        state.history.extend(array_to_blobproto(h) for h in self.history)
        write_binary(state, state_file)
        return model_file

    def restore(self, state_file):
        """Resume from a solver state (Caffe's or ours): iter, weights from learned_net, history, current_step.

        A name ending in .h5 is read as HDF5 (as Caffe decides), any other as a binary SolverState. Everything
        is read and checked before the solver changes, so a refused state leaves it as it was.
        """
        state_file = str(state_file)
        if state_file.endswith(".h5"):
            state = read_solverstate_hdf5(state_file)
            learned_net, history = state.learned_net, state.history
            same_shape = True  # Caffe loads HDF5 history without reshaping: shapes must be equal
        else:
            state = read_solverstate(state_file)
            learned_net = state.learned_net if state.HasField("learned_net") else None
            history = [blobproto_to_array(blob) for blob in state.history]
            same_shape = False  # Blob::FromProto reshapes: only the count has to agree
        if len(history) != len(self.history):
            raise SolverError(
                f"{state_file}: holds {len(history)} history blobs; this solver "
                f"({self.param.type}) over this net needs {len(self.history)}"
            )
        for index, (target, values) in enumerate(zip(self.history, history)):
            if values.size != target.size or (same_shape and values.shape != target.shape):
                raise SolverError(
                    f"{state_file}: history blob {index} has shape {values.shape}, expected {target.shape}"
                )
        if learned_net:
            self.net.copy_from(_resolve_beside(learned_net, state_file))
        for target, values in zip(self.history, history):
            target[...] = values.reshape(target.shape)
        self.iter = state.iter
        self.current_step = state.current_step


class _FunctionCallback:
    """pycaffe's callback form: two plain functions."""

    def __init__(self, on_start, on_gradients_ready):
        self.on_start = on_start
        self.on_gradients_ready = on_gradients_ready


def _resolve_beside(path, state_file):
    """learned_net is stored as written (relative to Caffe's working directory); also look beside the state."""
    if os.path.exists(path):
        return path
    beside = Path(state_file).parent / Path(path).name
    return str(beside) if beside.exists() else path


def get_solver(path):
    """The solver its prototxt asks for (`type`, after upgrading the legacy solver_type)."""
    param = read_solver_text(path)
    return SOLVERS.get(param.type)(param, source=str(path))
