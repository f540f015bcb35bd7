"""Which face in a till frame is the customer's: the largest.

A till camera sees the customer close up and, often, other people behind (the next in the queue,
a poster, staff). The detector orders faces by its score, so a small sharp face in the background
can come first; the customer's face is the largest in the frame. Every part of agecheck that picks
the customer (``agecheck predict``, ``agecheck serve``, the estimates log, the cashier audit) calls
:func:`customer_face`.
"""

from __future__ import annotations

from collections.abc import Sequence

from agecheck.faces.box import Box


def customer_face(boxes: Sequence[Box | None]) -> int | None:
    """The index of the largest face (by box area; the first of equals), None without faces. A face
    without a box (the whole photo taken as the face) is the customer when it is the only one."""
    if not boxes:
        return None
    areas = [-1.0 if box is None else box.width * box.height for box in boxes]
    return max(range(len(boxes)), key=lambda i: (areas[i], -i))
