"""How long an audio file lasts, read from its bytes as they pass (no decoder, no
ffmpeg): WAV from its `fmt ` and `data` chunks, FLAC from its STREAMINFO block, MP3 from
its frames (a Xing/Info or VBRI header gives the count at once; otherwise every frame
header is read, skipping the frame bodies). Other containers (ogg, m4a, webm) are not
read: their length is what the upstream reports, if anything.

Used for the audio seconds an upload is reserved and charged when the upstream does not
report them (whisper's `text`, `srt` and `vtt` answers report nothing), and by the
simulator to answer with the duration a real service would.

`Meter.feed` takes the file's chunks in order; `Meter.seconds` is the best figure known
so far (a header's promise early on, the count once the file has ended)."""

from __future__ import annotations

import struct

Buffer = bytes | bytearray | memoryview

# The header region a meter keeps while it looks for a WAV `data` chunk or the first
# MP3 frame past an ID3 tag: anything longer is not a file it can read.
MAX_HEADER = 1 << 20

# MPEG audio: bitrates (kbit/s) by [version is MPEG-1][layer] and index; sample rates by
# version and index; samples per frame by version and layer.
_BITRATES = {
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


class Frame:
    """One MPEG audio frame header."""

    __slots__ = ("channels", "length", "mpeg1", "rate", "samples")

    def __init__(self, mpeg1: bool, length: int, rate: int, samples: int, channels: int) -> None:
        self.mpeg1, self.length, self.rate, self.samples = mpeg1, length, rate, samples
        self.channels = channels


def frame_header(data: Buffer, at: int = 0) -> Frame | None:
    """The MPEG audio frame whose header starts at `at`, or None if none does."""
    if len(data) < at + 4:
        return None
    b1, b2, b3 = data[at + 1], data[at + 2], data[at + 3]
    if data[at] != 0xFF or b1 & 0xE0 != 0xE0:
        return None
    version, layer_bits = (b1 >> 3) & 3, (b1 >> 1) & 3
    rate_index, bitrate_index = (b2 >> 2) & 3, b2 >> 4
    if version == 1 or layer_bits == 0 or rate_index == 3 or bitrate_index in (0, 15):
        return None  # reserved values, or "free format", which no encoder we meet writes
    layer = 4 - layer_bits
    mpeg1 = version == 3
    bitrate = _BITRATES[(mpeg1, layer)][bitrate_index] * 1000
    rate = _RATES[version][rate_index]
    padding = (b2 >> 1) & 1
    if layer == 1:
        length, samples = (12 * bitrate // rate + padding) * 4, 384
    else:
        per = 144 if layer == 2 or mpeg1 else 72
        length, samples = per * bitrate // rate + padding, 1152 if layer == 2 or mpeg1 else 576
    return Frame(mpeg1, length, rate, samples, 1 if b3 >> 6 == 3 else 2)


def _xing_frames(data: Buffer, at: int, frame: Frame) -> int | None:
    """The frame count a Xing/Info (LAME) or VBRI header in the first frame gives."""
    side = (32 if frame.channels == 2 else 17) if frame.mpeg1 else (17 if frame.channels == 2 else 9)
    tag = at + 4 + side
    if bytes(data[tag:tag + 4]) in (b"Xing", b"Info") and len(data) >= tag + 12:
        flags = struct.unpack_from(">I", data, tag + 4)[0]
        if flags & 1:
            return int(struct.unpack_from(">I", data, tag + 8)[0])
    vbri = at + 36
    if bytes(data[vbri:vbri + 4]) == b"VBRI" and len(data) >= vbri + 18:
        return int(struct.unpack_from(">I", data, vbri + 14)[0])
    return None


class Meter:
    """The length of one audio file fed to it in order, chunk by chunk, then `end()`."""

    def __init__(self) -> None:
        self.kind = ""  # "", "wav", "flac", "mp3", or "unknown" once it cannot tell
        self.bytes = 0  # fed so far
        self._ended = False
        self._head = bytearray()  # the start of the file, until its format is read
        # WAV: bytes per second, the data chunk's promised size and what came of it.
        self._byte_rate = 0
        self._promised = 0
        self._data = 0
        self._flac: float | None = None  # FLAC: from STREAMINFO
        # MP3: the frames walked and their seconds, or the count a Xing/VBRI header gives;
        # how much of the next chunk belongs to the current frame; a header cut across
        # two chunks; and whether walking has stopped.
        self._frames = 0
        self._walked = 0.0
        self._xing: float | None = None
        self._skip = 0
        self._carry = b""
        self._stopped = False

    # --- what it knows -------------------------------------------------------------------
    def seconds(self) -> float | None:
        """The length as far as it is known: None for a file it cannot read."""
        if self.kind == "wav":
            if 0 < self._promised < 0xFFFFFFFF:  # a size the header promises
                size = min(self._promised, self._data) if self._ended else self._promised
            else:  # a streamed WAV (size 0 or 0xFFFFFFFF): what arrived
                size = self._data
            return size / self._byte_rate if size else None
        if self.kind == "flac":
            return self._flac
        if self.kind == "mp3":
            if self._xing is not None:
                return self._xing
            return self._walked if self._frames else None
        return None

    # --- reading -------------------------------------------------------------------------
    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        if not chunk or self.kind in ("unknown", "flac"):
            return
        if self.kind == "wav":
            self._data += len(chunk)
        elif self.kind == "mp3":
            self._walk(chunk)
        else:
            self._head += chunk
            self._sniff()

    def end(self) -> None:
        """The file is over: what is still buffered is read as it is."""
        self._ended = True
        if not self.kind and self._head:
            self._sniff()
        if not self.kind:
            self._give_up()

    def _sniff(self) -> None:
        head = self._head
        if len(head) < 12 and not self._ended:
            return
        if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
            self._wav_chunks()
        elif head[:4] == b"fLaC":
            self._read_flac()
        elif head[:3] == b"ID3" or frame_header(head) is not None:
            self._mp3_start()
        else:
            self._give_up()
        if not self.kind and len(head) > MAX_HEADER:
            self._give_up()

    def _give_up(self) -> None:
        self.kind = "unknown"
        self._head = bytearray()

    def _wav_chunks(self) -> None:
        head = self._head
        byte_rate, at = 0, 12
        while len(head) >= at + 8:
            name, size = bytes(head[at:at + 4]), struct.unpack_from("<I", head, at + 4)[0]
            if name == b"fmt " and len(head) >= at + 20:
                byte_rate = struct.unpack_from("<I", head, at + 16)[0]
            if name == b"data":
                if not byte_rate:
                    self._give_up()
                    return
                self.kind = "wav"
                self._byte_rate, self._promised = byte_rate, size
                self._data = len(head) - (at + 8)
                self._head = bytearray()
                return
            at += 8 + size + (size & 1)

    def _read_flac(self) -> None:
        head = self._head
        if len(head) < 26 or head[4] & 0x7F != 0:  # the first block is always STREAMINFO
            if self._ended or len(head) >= 26:
                self._give_up()
            return
        info = int.from_bytes(head[18:26], "big")
        rate, total = info >> 44, info & ((1 << 36) - 1)
        self.kind = "flac"
        self._head = bytearray()
        self._flac = total / rate if rate and total else None

    def _mp3_start(self) -> None:
        head = self._head
        at = 0
        if head[:3] == b"ID3":
            if len(head) < 10:
                return
            size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
            at = 10 + size + (10 if head[5] & 0x10 else 0)
        frame = frame_header(head, at)
        if frame is None:
            if self._ended or len(head) >= at + 4:
                self._give_up()
            return
        second = at + frame.length
        if len(head) < second + 4 and not self._ended:
            return  # two frames in a row, before calling it MP3
        if len(head) >= second + 4 and frame_header(head, second) is None:
            self._give_up()
            return
        self.kind = "mp3"
        frames = _xing_frames(head, at, frame)
        if frames is not None:
            self._xing = frames * frame.samples / frame.rate
            self._stopped = True  # the header has the count: no frame need be read
            self._head = bytearray()
            return
        data, self._head = bytes(head), bytearray()
        self._skip = at
        self._walk(data)

    def _walk(self, chunk: bytes) -> None:
        """Frame headers in `chunk`, each frame's body skipped by its length."""
        if self._stopped:
            return
        data = self._carry + chunk if self._carry else chunk
        self._carry = b""
        at, end = self._skip, len(data)
        while at + 4 <= end:
            frame = frame_header(data, at)
            if frame is None:
                # The end of the frames (an ID3v1 tag, trailing bytes): nothing after
                # it is counted.
                self._stopped = True
                return
            self._frames += 1
            self._walked += frame.samples / frame.rate
            at += frame.length
        if at < end:
            self._carry = data[at:]  # a header cut in two: the next chunk completes it
            at = end
        self._skip = at - end


def measure(data: bytes) -> float | None:
    """The length of a whole file in memory."""
    meter = Meter()
    meter.feed(data)
    meter.end()
    return meter.seconds()
