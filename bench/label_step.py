"""What the LABEL step envctl appends to a Dockerfile build costs the classic builder on this engine.

    flock /tmp/envctl-integration.lock .venv/bin/python bench/label_step.py IMAGE [ROUNDS]

Two Dockerfiles on the same base (e.g. the reference stack's postgres image: what its last
build steps see): `COPY x /x` alone and with one LABEL line; no cache; interleaved rounds."""
import io, statistics, sys, tarfile, time
import docker

BASE = sys.argv[1]
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 4
client = docker.APIClient(timeout=300)

def context(label: bool) -> io.BytesIO:
    text = f"FROM {BASE}\nCOPY x /x\n" + ('LABEL "envctl.measure"="labelcost"\n' if label else "")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", text.encode()), ("x", b"x\n")):
            info = tarfile.TarInfo(name); info.size = len(data); tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf

times = {False: [], True: []}
for r in range(ROUNDS):
    for label in ((False, True) if r % 2 == 0 else (True, False)):
        tag = f"envctl-labelcost:{'label' if label else 'plain'}"
        started = time.perf_counter()
        try:
            for _ in client.build(fileobj=context(label), custom_context=True, tag=tag, nocache=True, rm=True,
                                  decode=True):
                pass
            times[label].append(time.perf_counter() - started)
        finally:  # the image and the steps under it: nothing left behind
            if client.images(name=tag, quiet=True):
                client.remove_image(tag)
print({("with LABEL" if k else "plain"): [round(t, 2) for t in v] for k, v in times.items()})
print(f"median plain {statistics.median(times[False]):.2f} s, with LABEL {statistics.median(times[True]):.2f} s, "
      f"the LABEL step {statistics.median(times[True]) - statistics.median(times[False]):.2f} s")
