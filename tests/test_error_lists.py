"""Names in error messages: a model may have thousands of weights, so a message lists the first
few and says how many more (`wrc.errors.listed`), and names a given name's closest known one
(`wrc.errors.unknown_names`), on every path that lists weights."""

from __future__ import annotations

import numpy as np
import pytest

import wrc
from wrc.errors import LISTED, InputError, RuntimeStateError, listed, unknown_names

COUNT = 300


def test_listed_keeps_a_few_names_and_counts_the_rest() -> None:
    assert listed([]) == ""
    assert listed(["a", 3]) == "a, 3"
    names = [f"w{i}" for i in range(LISTED)]
    assert listed(names) == ", ".join(names)  # exactly the limit: all of them
    assert listed([*names, "x"]) == ", ".join(names) + ", ... (1 more)"
    assert listed(range(5000), limit=2) == "0, 1, ... (4,998 more)"


def test_unknown_names_suggest_the_closest_known_one() -> None:
    known = ["encoder.weight", "encoder.bias", "decoder.weight"]
    assert unknown_names("weight", ["encoder.wieght"], known) == (
        "unknown weight 'encoder.wieght' (did you mean 'encoder.weight'? weights: encoder.weight, encoder.bias, "
        "decoder.weight)")
    assert unknown_names("weight", ["bias", "model.decoder.weight"], known) == (  # a prefix missing, one added
        "unknown weights 'bias', 'model.decoder.weight' (did you mean 'encoder.bias' for 'bias', 'decoder.weight' "
        "for 'model.decoder.weight'? weights: encoder.weight, encoder.bias, decoder.weight)")
    assert unknown_names("weight", ["zzz", 7], known) == (
        "unknown weights 'zzz', 7 (weights: encoder.weight, encoder.bias, decoder.weight)")


@pytest.fixture(scope="module")
def wide() -> wrc.ModelBuffer:
    """A weight-stripped model of COUNT weights."""
    g = wrc.Graph("wide")
    acc = g.data("x", (2,))
    for i in range(COUNT):
        acc = g.add(acc, g.const(f"w{i}", np.full(2, i, np.float32)))
    g.output(acc)
    names = [f"w{i}" for i in range(COUNT)]
    with wrc.BuildSession():
        graphs = wrc.convert_to_weight_refreshable_graphs(g, names)
        return wrc.bundle_build_model([(graphs.infer_graph, {}), (graphs.var_update_graph, {})])


def test_messages_about_many_weights_stay_short(wide: wrc.ModelBuffer) -> None:
    b = wrc.load_bundle(wide)
    more = f"... ({COUNT - LISTED} more)"
    with pytest.raises(RuntimeStateError) as e:
        b.init()  # weight-stripped: every weight must come with the first update
    assert str(e.value).endswith(f"call update() with all weights ({listed(f'w{i}' for i in range(COUNT))}) "
                                 f"before infer()") and more in str(e.value) and len(str(e.value)) < 300
    values = {f"w{i}": np.full(2, i, np.float32) for i in range(COUNT)}
    with pytest.raises(InputError) as e:
        b.update({**values, **{f"layer.w{i}": values[f"w{i}"] for i in range(100)}})
    message = str(e.value)
    assert message.startswith("update() changed nothing: unknown weights 'layer.w0', 'layer.w1', ")
    assert "(92 more) (did you mean 'w0' for 'layer.w0', 'w1' for 'layer.w1'," in message
    assert message.endswith(f"weights: {listed(values)})") and len(message) < 700
    b.update(values)  # nothing changed by the refused update: all weights still to be given
    assert np.array_equal(b.infer({"x": np.zeros(2, np.float32)})[0], np.full(2, sum(range(COUNT)), np.float32))
