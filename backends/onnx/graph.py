"""What an exported decoder's graph file says, read without building a session, and the copy
of a graph whose logits are sliced to the last positions.

An exported decoder computes the logits of every position of its input, but a prompt needs
only the last one: for a 2,000-token prompt and Qwen2.5's 151,936 tokens that is 1.2 GB of
logits and a quarter of the prefill's work. So where the graph ends in a ``MatMul`` that makes
``logits``, the session is built from a copy of the graph (in memory; the weights stay where
they are) that first slices the hidden states to the last ``LOGITS_KEPT`` positions, an input
``forward`` feeds. (Our own GroupQueryAttention graphs have that input built in.)
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("ghostcomplete.onnx")

# The input the sliced graph adds: how many of the last positions get logits.
LOGITS_KEPT = "ghostcomplete_logits_kept"
# Graph files larger than this hold their weights inline: copying one in memory to slice it
# would double the memory it takes to load, so it is loaded as it is.
_MAX_INLINE_BYTES = 256 * 1024 * 1024


def has_group_query_attention(model_file: Path) -> bool:
    """Whether the graph uses ``GroupQueryAttention``, read cheaply: such graphs keep their
    weights in an external file, so the graph file is small, and the op's name is stored as
    it is written. (What the op then does is checked by a run at load.)"""
    try:
        if model_file.stat().st_size > _MAX_INLINE_BYTES:
            return False
        return b"GroupQueryAttention" in model_file.read_bytes()
    except OSError:
        return False


def last_logits_graph(model_file: Path) -> bytes | None:
    """``model_file``'s graph with the hidden states sliced to the last ``LOGITS_KEPT``
    positions before the ``MatMul`` that makes ``logits``; None where the ``onnx`` package,
    the file's size or the graph's shape does not allow it."""
    try:
        if model_file.stat().st_size > _MAX_INLINE_BYTES:
            return None
        import onnx
        from onnx import TensorProto, helper
    except ImportError:
        return None
    try:
        model = onnx.load(str(model_file), load_external_data=False)
    except Exception as error:  # a broken file: the session's own load says why
        log.debug("onnx: cannot read %s to slice its logits: %s", model_file, error)
        return None
    graph = model.graph
    if LOGITS_KEPT in {i.name for i in graph.input}:
        return None
    makers = [n for n in graph.node if "logits" in n.output]
    if len(makers) != 1 or makers[0].op_type != "MatMul":
        return None
    head = makers[0]
    graph.input.append(helper.make_tensor_value_info(LOGITS_KEPT, TensorProto.INT64, [1]))
    graph.initializer.extend(
        [
            helper.make_tensor("ghostcomplete_end", TensorProto.INT64, [1], [2**62]),
            helper.make_tensor("ghostcomplete_axis", TensorProto.INT64, [1], [1]),
        ]
    )
    start = helper.make_node("Neg", [LOGITS_KEPT], ["ghostcomplete_start"])
    sliced = helper.make_node(
        "Slice",
        [head.input[0], "ghostcomplete_start", "ghostcomplete_end", "ghostcomplete_axis"],
        ["ghostcomplete_kept_hidden"],
    )
    at = list(graph.node).index(head)
    head.input[0] = "ghostcomplete_kept_hidden"
    graph.node.insert(at, sliced)
    graph.node.insert(at, start)
    return bytes(model.SerializeToString())
