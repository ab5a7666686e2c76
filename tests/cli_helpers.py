"""What the end-to-end tests of the `caffelite` command share: a tiny model, its solver file, signalling a run."""

import threading


def tiny_net(batch=16, accuracy=True):
    """DummyData -> InnerProduct -> SoftmaxWithLoss (and an Accuracy in the test phase), as prototxt text."""
    text = f"""
name: "tiny"
layer {{ name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param {{ shape {{ dim: {batch} dim: 4 }} shape {{ dim: {batch} }}
                           data_filler {{ type: "gaussian" }} data_filler {{ type: "constant" value: 1 }} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param {{ num_output: 3 weight_filler {{ type: "xavier" }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
"""
    if accuracy:
        text += 'layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" include { phase: TEST } }\n'
    return text


def write_model(folder, net, solver_settings):
    """Write `net` to folder/net.prototxt and a solver.prototxt naming it, then `solver_settings`; the solver's path."""
    (folder / "net.prototxt").write_text(net)
    solver = folder / "solver.prototxt"
    solver.write_text(f'net: "{folder}/net.prototxt" {solver_settings}')
    return solver


def send_signals(process, schedule, timeout=60):
    """Send each (iteration, signal) of `schedule` once "Iteration <iteration> (" is logged; the whole log.

    Every line is read through the one stream iterator (mixing it with communicate() would drop what the iterator
    had buffered). A trainer still running `timeout` seconds later, having not heeded a signal, is killed.
    """
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    lines, pending = [], list(schedule)
    try:
        for line in process.stderr:
            lines.append(line)
            if pending and f"Iteration {pending[0][0]} (" in line:
                process.send_signal(pending.pop(0)[1])
        process.wait()
    finally:
        watchdog.cancel()
        process.kill()  # a no-op once it has exited
    log = "".join(lines)
    assert process.returncode == 0, log
    return log
