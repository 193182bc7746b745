"""What the H.264 bitstream says that FFmpeg does not pass on: how many reference pictures the
decoder keeps (the SPS), and whether a picture is one (each slice's ``nal_ref_idc``).

Used by `actionlrp.references` to find the reference picture of each motion vector.
"""

from __future__ import annotations


def max_reference_frames(extradata: bytes | None) -> int | None:
    """``max_num_ref_frames`` of an H.264 stream's first sequence parameter set, or None.

    Parameters
    ----------
    extradata : bytes or None
        The codec context's extradata: an ``avcC`` record (MP4, MKV) or Annex B NAL units.

    Returns
    -------
    int or None
        The number of reference pictures the decoder keeps; None where no SPS is found or it
        does not parse (MPEG-TS and raw streams often carry none in the extradata).
    """
    if not extradata:
        return None
    data = bytes(extradata)
    try:
        nal = _first_sps(data)
        return None if nal is None else _sps_max_refs(nal)
    except (IndexError, ValueError):
        return None


def _first_sps(data: bytes) -> bytes | None:
    if data[0] == 1 and len(data) > 8:  # avcC: version 1, …, SPS count, 2-byte length, SPS
        if data[5] & 0x1F == 0:
            return None
        size = int.from_bytes(data[6:8], "big")
        return data[8 : 8 + size]
    for unit in data.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01"):
        if unit and unit[0] & 0x1F == 7:
            return unit
    return None


class _Bits:
    """Exp-Golomb reader over an RBSP (emulation-prevention bytes removed)."""

    def __init__(self, rbsp: bytes) -> None:
        self.value, self.size, self.at = int.from_bytes(rbsp, "big"), 8 * len(rbsp), 0

    def u(self, n: int) -> int:
        if self.at + n > self.size:
            raise ValueError("SPS ends early")
        self.at += n
        return (self.value >> (self.size - self.at)) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


def _sps_max_refs(nal: bytes) -> int:
    """``max_num_ref_frames`` of an SPS NAL unit (H.264 § 7.3.2.1.1)."""
    rbsp = bytearray()
    zeros = 0
    for byte in nal[1:]:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        rbsp.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    bits = _Bits(bytes(rbsp))
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level
    bits.ue()  # seq_parameter_set_id
    if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        chroma = bits.ue()
        if chroma == 3:
            bits.u(1)  # separate_colour_plane_flag
        bits.ue(), bits.ue(), bits.u(1)  # bit depths, qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma != 3 else 12):
                if bits.u(1):
                    last = nxt = 8
                    for _ in range(16 if i < 6 else 64):
                        if nxt:
                            nxt = (last + bits.se() + 256) % 256
                        last = nxt or last
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()
    elif poc_type == 1:
        bits.u(1)
        bits.se(), bits.se()
        for _ in range(bits.ue()):
            bits.se()
    return bits.ue()


def nal_length_size(extradata: bytes | None) -> int:
    """Bytes of the length before each NAL unit in an H.264 stream's packets (``avcC``), or 0
    where NAL units are delimited by start codes (Annex B)."""
    data = bytes(extradata or b"")
    return (data[4] & 3) + 1 if len(data) > 6 and data[0] == 1 else 0


def packet_reference(packet, length_size: int) -> int:
    """Whether an H.264 packet (`av.Packet` or bytes) holds a reference picture: 1 (its first
    slice has ``nal_ref_idc`` ≠ 0), 0 (it has not) or −1 (no slice found). ``length_size`` as
    `nal_length_size` gives it."""
    packet = memoryview(packet)
    size = len(packet)
    if length_size:
        at = 0
        while at + length_size < size:
            header = packet[at + length_size]
            if header & 0x1F in (1, 5):
                return int(header & 0x60 != 0)
            at += length_size + int.from_bytes(packet[at : at + length_size], "big")
        return -1
    head = bytes(packet[:4096])  # slices follow the parameter sets and SEI
    at = head.find(b"\x00\x00\x01")
    while 0 <= at < len(head) - 3:
        header = head[at + 3]
        if header & 0x1F in (1, 5):
            return int(header & 0x60 != 0)
        at = head.find(b"\x00\x00\x01", at + 3)
    return -1
