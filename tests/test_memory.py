"""nst.memory: the activation count on the meta device (its calibration against measured peaks is
benchmarks/memory.py's)."""
from torch import nn

from nst.memory import activation_bytes, meta_pass


def test_activation_bytes_counts_each_kept_tensor_once():
    """conv-relu-conv-relu(-conv): autograd keeps the input (3 ch), relu1's output (4 ch; saved by the ReLU and the
    next conv, counted once) and relu2's output (5 ch; its Gram's view counts with it); not the weights."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1), nn.ReLU(),
                        nn.Conv2d(5, 6, 3, padding=1))
    assert activation_bytes(net, [1], "relu", (10, 8)) == (3 + 4 + 5) * 10 * 8 * 4
    assert activation_bytes(net, [0], "relu", (10, 8)) == (3 + 4) * 10 * 8 * 4  # cut after the first ReLU
    assert next(net.parameters()).device.type == "cpu"  # the caller's network is untouched


def test_the_content_term_finds_its_layer_by_index_and_by_name():
    """The largest content-layer feature map, whichever way the layer is given (validate passes the user's list
    as typed, the batch its models' lists): 0 when no content layer is among the layers."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 5, 3, padding=1), nn.ReLU())
    assert meta_pass(net, [0, 1], "relu", (10, 8), [1])[1] == 5 * 10 * 8 * 4
    assert meta_pass(net, [0, "3"], "relu", (10, 8), ["3"])[1] == 5 * 10 * 8 * 4  # a named_modules() path
    assert meta_pass(net, [0, 1], "relu", (10, 8), [])[1] == 0
