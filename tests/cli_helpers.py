"""What the end-to-end tests of the `caffelite` command share: a tiny model and its solver file."""


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
