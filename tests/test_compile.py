"""torch.compile over fastsel's ops (as pytorch_cluster tests its ``fps``): the registered ops compile
into one graph with no break (their fake kernels give the output shapes), and the public wrappers
give eager's answers when compiled. The wrappers break the graph where they read a tensor into
Python on purpose -- input checks (NaN/inf, integer range), the power-of-two scale chosen from the
pool's magnitude, the start drawn from the seed -- each of which decides which kernel call to make."""
import pytest
import torch

import fastsel
from _helpers import NO_EXT

pytestmark = pytest.mark.skipif(NO_EXT, reason="the registered ops need the compiled extension")


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_the_ops_compile_into_one_graph(rng):
    x = torch.as_tensor(rng.standard_normal((300, 8)), dtype=torch.float32)

    def body(x):
        idx, d2, _ = torch.ops.fastsel.greedy(x, 20, 3)
        dist, nbr = torch.ops.fastsel.nn(x[idx], x, 2, False)
        t = torch.ops.fastsel.threshold_decay(x, 15, 3, 0.5, 0.9, False)
        return idx, d2, dist, nbr, t[0]
    eager = body(x)
    compiled = torch.compile(body, fullgraph=True, backend="aot_eager")(x)  # fullgraph: a break raises
    for a, b in zip(eager, compiled):
        assert torch.equal(a, b)
    explained = torch._dynamo.explain(body)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1


def test_compiled_wrappers_give_eager_answers(rng):
    x = torch.as_tensor(rng.standard_normal((400, 6)), dtype=torch.float32)
    g = torch.compile(lambda x: fastsel.greedy(x, 25, 7), backend="aot_eager")(x)
    e = fastsel.greedy(x, 25, 7)
    assert torch.equal(g.indices, e.indices) and torch.equal(g.distances, e.distances)
    t = torch.compile(lambda x: fastsel.threshold_decay(x, 30, 2, seed=1), backend="aot_eager")(x)
    assert torch.equal(t.indices, fastsel.threshold_decay(x, 30, 2, seed=1).indices)
    nn_c = torch.compile(lambda q, r: fastsel.nn(q, r, k=3), backend="aot_eager")(x[:50], x)
    nn_e = fastsel.nn(x[:50], x, k=3)
    assert torch.equal(nn_c.indices, nn_e.indices) and torch.equal(nn_c.distances, nn_e.distances)
