# What a payload compresses to as permessage-deflate sends it with no context takeover (one raw
# DEFLATE stream per message): libdeflate levels 1-12 (through ctypes, the library wspush links)
# and zlib levels 1-9 (sync flush, 00 00 ff ff removed). Prints JSON with sizes in bytes.
#   /usr/bin/python3 docs/results/19-deflate/payload-levels.py bench/payloads/notifications-2k.json
import ctypes, datetime, json, os, platform, subprocess, sys, zlib

raw = open(sys.argv[1], "rb").read().rstrip(b"\n")
ld = ctypes.CDLL("libdeflate.so.0")
ld.libdeflate_alloc_compressor.restype = ctypes.c_void_p
ld.libdeflate_deflate_compress.restype = ctypes.c_size_t
ld.libdeflate_deflate_compress.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                                           ctypes.c_char_p, ctypes.c_size_t]
ld.libdeflate_free_compressor.argtypes = [ctypes.c_void_p]
out = ctypes.create_string_buffer(1 << 16)
sizes = {"libdeflate": {}, "zlib": {}}
for lvl in range(1, 13):
    c = ld.libdeflate_alloc_compressor(lvl)
    sizes["libdeflate"][lvl] = ld.libdeflate_deflate_compress(c, raw, len(raw), out, len(out))
    ld.libdeflate_free_compressor(c)
for lvl in range(1, 10):
    z = zlib.compressobj(lvl, zlib.DEFLATED, -15, 9)
    sizes["zlib"][lvl] = len(z.compress(raw) + z.flush(zlib.Z_SYNC_FLUSH)) - 4
best = min(min(v.values()) for v in sizes.values())
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
print(json.dumps({
    "issue": 19, "command": "/usr/bin/python3 " + " ".join(sys.argv), "commit": commit,
    "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()},
    "payload": {"file": sys.argv[1], "bytes": len(raw)}, "sizes": sizes,
    "best": {"bytes": best, "ratio": best / len(raw)},
    # a frame is the payload plus a 4-byte header at this size: a third of the plain frame
    "bytes_for_a_third_of_the_frame": (len(raw) + 4) / 3 - 4,
}, indent=1))
