"""Count the records in a ``records`` field from the batch headers alone, without decoding a record.

A v2 record batch (magic 2, every Produce version Kafka 4 accepts) says how many records it holds at
a fixed offset of its header. Legacy message sets (magic 0 and 1) have no such count: each entry is
counted as one, and a compressed wrapper therefore as one as well.
"""

from __future__ import annotations

import struct

_BATCH_LENGTH = struct.Struct(">i")  # at offset 8, after the base offset: the bytes that follow it
_RECORDS_COUNT = struct.Struct(">i")  # at offset 57 of a v2 batch header
LOG_OVERHEAD = 12  # base offset (8) + batch length (4)
MAGIC_OFFSET = 16
RECORDS_COUNT_OFFSET = 57
V2_HEADER = 61


def count_records(batches: memoryview | bytes | None) -> int:
    """How many records the batches hold; a truncated last batch (Fetch may send one) is not counted."""
    if not batches:
        return 0
    total = 0
    pos, end = 0, len(batches)
    while pos + LOG_OVERHEAD <= end:
        size = LOG_OVERHEAD + _BATCH_LENGTH.unpack_from(batches, pos + 8)[0]
        if size <= LOG_OVERHEAD or pos + size > end:
            break
        if size >= V2_HEADER and batches[pos + MAGIC_OFFSET] >= 2:
            total += max(_RECORDS_COUNT.unpack_from(batches, pos + RECORDS_COUNT_OFFSET)[0], 0)
        else:
            total += 1
        pos += size
    return total
