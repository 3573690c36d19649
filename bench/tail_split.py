"""One cold build each way of the reference stack's Dockerfiles that end in RUN or a code-only tail.

    flock /tmp/envctl-integration.lock .venv/bin/python bench/tail_split.py [KEY...]

Old: the classic builder builds the whole Dockerfile with envctl's LABEL step appended
(ENVCTL_ASSEMBLE=0). New: the builder builds the part up to the last RUN, envctl writes the
rest and its labels (`codeonly.split`). Each on the same OS base (built first, not timed), in a
copy of the stack under its own project name; each image and its build steps are removed after
it is timed, so every build is cold. Prints seconds per image and way."""
import json, os, shutil, sys, tempfile, time
from pathlib import Path

from envctl.backend.engine import Engine
from envctl.images.builder import ImageBuilder, image_targets
from envctl.topology import load_topology

REPO = Path(__file__).resolve().parent.parent
KEYS = sys.argv[1:] or ["service:redis", "base:python", "service:postgres"]


def main() -> None:
    engine = Engine.connect()
    with tempfile.TemporaryDirectory(prefix="envctl-tailbench-") as tmp:
        root = Path(tmp)
        for part in ("envctl.yaml", "services", "fixtures"):
            source = REPO / part
            (shutil.copytree if source.is_dir() else shutil.copy)(source, root / part)
        text = (root / "envctl.yaml").read_text().replace("\nname: shop\n", "\nname: tailbench\n", 1)
        (root / "envctl.yaml").write_text(text)
        topology = load_topology(root / "envctl.yaml", environ={})
        targets = image_targets(topology)
        first = ImageBuilder(topology, engine)
        first._resolve(targets["base:os"])  # the OS base (bootstrap and CA layer): not timed
        times: dict[str, dict[str, float]] = {}
        try:
            for index, key in enumerate(KEYS):
                for way in (("old", "new") if index % 2 == 0 else ("new", "old")):
                    os.environ["ENVCTL_ASSEMBLE"] = "1" if way == "new" else "0"
                    builder = ImageBuilder(topology, engine)
                    builder.resolved = dict(first.resolved)
                    started = time.perf_counter()
                    builder._resolve(targets[key])
                    elapsed = time.perf_counter() - started
                    image = builder.resolved[key]
                    assert image.built, f"{key} was cached"
                    log = next((root / ".envctl" / "builds").glob(f"*{targets[key].name}.log")).read_text()
                    assert ("envctl: assembled" in log) == (way == "new"), log[-2000:]
                    times.setdefault(key, {})[way] = round(elapsed, 2)
                    print(key, way, f"{elapsed:.2f} s", flush=True)
                    engine.remove_image(image.ref)  # and the build's steps: the next build is cold
        finally:
            for image in reversed(list(first.resolved.values())):
                engine.remove_image(image.ref)
            for ref in first.expected_refs():
                engine.remove_image(ref)
    print(json.dumps(times))


if __name__ == "__main__":
    main()
