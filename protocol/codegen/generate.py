"""Read Kafka's message schemas from a kafka-clients jar and write one Python module per schema.

Each module holds a slots dataclass per struct (children first) with a FIELDS tuple describing every
version, so the codec can compile readers and writers per version at run time. The package's
``__init__`` is a registry of requests and responses by API key.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import keyword
import os
import re
import subprocess
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenantry.protocol.codegen.overrides import entity_for
from tenantry.protocol.schema import PRIMITIVES, Versions

_SCALAR_PY = {
    "int8": "int", "int16": "int", "uint16": "int", "int32": "int", "int64": "int",
    "float64": "float", "bool": "bool", "string": "str", "bytes": "bytes",
    "records": "bytes | memoryview", "uuid": "uuid.UUID",
}


def snake(name: str) -> str:
    s = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    s = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", s).lower()
    return s + "_" if keyword.iskeyword(s) else s


def strip_comments(text: str) -> str:
    return re.sub(r"^\s*//.*$", "", text, flags=re.M)


@dataclass
class StructDef:
    name: str
    about: str
    fields: list[dict[str, Any]]


@dataclass
class Module:
    message: dict[str, Any]
    source: str
    sha256: str
    structs: list[StructDef] = field(default_factory=list)  # children before parents


def _collect(module: Module, name: str, about: str, fields: list[dict[str, Any]], common: set[str]) -> None:
    for f in fields:
        if "fields" in f:
            _collect(module, f["type"].removeprefix("[]"), f.get("about", ""), f["fields"], common)
    module.structs.append(StructDef(name, about, fields))


def _default_literal(f: dict[str, Any], base: str, nullable: bool) -> tuple[str, str, bool]:
    """(python default expression, Field default expression, default is null)."""
    raw = f.get("default")
    if raw == "null" or (base == "records" and raw is None):
        return "None", "None", True
    if base in ("int8", "int16", "uint16", "int32", "int64"):
        value = repr(int(str(raw), 0)) if raw not in (None, "") else "0"
        return value, value, False
    if base == "float64":
        value = repr(float(raw)) if raw not in (None, "") else "0.0"
        return value, value, False
    if base == "bool":
        value = "True" if str(raw).lower() == "true" else "False"
        return value, value, False
    if base == "string":
        value = repr(raw if raw is not None else "")
        return value, value, False
    if base == "bytes":
        return "b''", "b''", False
    if base == "uuid":
        return "ZERO_UUID", "ZERO_UUID", False
    raise ValueError(f"no default for {base}")


def _render_struct(sd: StructDef, module_name: str, message_name: str, path_of: dict[str, str],
                   is_message: bool, msg: dict[str, Any]) -> str:
    base_cls = "Message" if is_message else "Struct"
    lines = ["@dataclass(slots=True)", f"class {sd.name}({base_cls}):"]
    doc = (sd.about or f"{sd.name}, a struct of {message_name}.").replace('"""', "'''").replace("\\", "\\\\")
    lines.append(f'    """{doc}"""')
    lines.append("")
    field_lines = []
    for f in sd.fields:
        type_ = f["type"]
        array = type_.startswith("[]")
        base = type_.removeprefix("[]")
        nullable = Versions.parse(f.get("nullableVersions")) != Versions.parse(None)
        is_struct = base not in PRIMITIVES
        py = base if is_struct else _SCALAR_PY[base]
        name = snake(f["name"])
        kafka_path = f"{path_of[sd.name]}{f['name']}"
        if array:
            ann = f"list[{py}]"
            null_default = f.get("default") == "null"
            ann += " | None" if nullable else ""
            py_default = "None" if null_default else "field(default_factory=list)"
            fd_default, default_null = "None", null_default
        elif is_struct:
            null_default = f.get("default") == "null" or (nullable and "default" not in f)
            ann = f"{py} | None" if nullable else py
            py_default = "None" if null_default else f"field(default_factory={py})"
            fd_default, default_null = "None", null_default
        else:
            py_default, fd_default, default_null = _default_literal(f, base, nullable)
            ann = py + (" | None" if nullable or default_null else "")
        lines.append(f"    {name}: {ann} = {py_default}")
        entity = entity_for(message_name, kafka_path, f["name"], base, f.get("entityType"))
        args = [repr(name), repr(f["name"]), repr("struct" if is_struct else base),
                f"Versions.parse({f['versions']!r})"]
        if array:
            args.append("array=True")
        if is_struct:
            args.append(f"struct={py}")
        if "nullableVersions" in f:
            args.append(f"nullable=Versions.parse({f['nullableVersions']!r})")
        if "taggedVersions" in f:
            args.append(f"tagged=Versions.parse({f['taggedVersions']!r})")
            args.append(f"tag={f['tag']}")
        if fd_default != "None":
            args.append(f"default={fd_default}")
        if default_null:
            args.append("default_null=True")
        if entity:
            args.append(f"entity={entity!r}")
        if "flexibleVersions" in f:
            args.append(f"flexible=Versions.parse({f['flexibleVersions']!r})")
        field_lines.append(f"        Field({', '.join(args)}),")
    lines.append("    unknown_tags: dict[int, bytes] = field(default_factory=dict)")
    lines.append("")
    if is_message:
        api_key = msg.get("apiKey")
        lines.append(f"    API_KEY = {api_key!r}")
        lines.append(f"    MESSAGE_TYPE = {msg['type']!r}")
        lines.append(f"    VALID_VERSIONS = Versions.parse({msg['validVersions']!r})")
        lines.append(f"    FLEXIBLE_VERSIONS = Versions.parse({msg.get('flexibleVersions', 'none')!r})")
    lines.append("    FIELDS = (")
    lines.extend(field_lines)
    lines.append("    )")
    return "\n".join(lines)


def _dependency_order(structs: list[StructDef]) -> list[StructDef]:
    """Each struct after every struct its fields name, so class bodies can refer to them."""
    by_name = {sd.name: sd for sd in structs}
    ordered: list[StructDef] = []
    done: set[str] = set()

    def visit(sd: StructDef) -> None:
        if sd.name in done:
            return
        done.add(sd.name)
        for f in sd.fields:
            dep = by_name.get(f["type"].removeprefix("[]"))
            if dep is not None:
                visit(dep)
        ordered.append(sd)

    for sd in structs:
        visit(sd)
    return ordered


def render(module: Module, kafka_version: str, jar_name: str) -> str:
    msg = module.message
    name = msg["name"]
    common = {cs["name"] for cs in msg.get("commonStructs", [])}
    for cs in msg.get("commonStructs", []):
        _collect(module, cs["name"], cs.get("about", ""), cs["fields"], common)
    _collect(module, name, msg.get("about", ""), msg.get("fields", []), common)
    # Dotted paths of each struct from the message root, for the override list.
    path_of: dict[str, str] = {name: ""}

    def walk(fields: list[dict[str, Any]], prefix: str) -> None:
        for f in fields:
            base = f["type"].removeprefix("[]")
            if base not in PRIMITIVES:
                path_of.setdefault(base, f"{prefix}{f['name']}.")
                if "fields" in f:
                    walk(f["fields"], f"{prefix}{f['name']}.")
    walk(msg.get("fields", []), "")
    for cs in msg.get("commonStructs", []):
        path_of.setdefault(cs["name"], f"{cs['name']}.")
        walk(cs["fields"], f"{cs['name']}.")
    seen: set[str] = set()
    bodies = []
    for sd in _dependency_order(module.structs):
        seen.add(sd.name)
        bodies.append(_render_struct(sd, "", name, path_of, sd.name == name, msg))
    header = (
        f"# Generated by tenantry.protocol.codegen from {module.source} in {jar_name}\n"
        f"# (Apache Kafka {kafka_version}; schema sha256 {module.sha256[:16]}). Do not edit: run `make codegen`.\n"
        "# ruff: noqa\n"
        "from __future__ import annotations\n\n"
        "import uuid\n"
        "from dataclasses import dataclass, field\n\n"
        "from tenantry.protocol.schema import ZERO_UUID, Field, Message, Struct, Versions\n\n"
        "__all__ = [" + ", ".join(repr(s) for s in sorted(seen)) + "]\n"
    )
    return header + "\n\n" + "\n\n\n".join(bodies) + "\n"


def render_registry(modules: list[tuple[str, dict[str, Any]]], kafka_version: str, jar_name: str) -> str:
    imports, requests, responses, listeners, names, data = [], [], [], [], [], []
    for mod_name, msg in sorted(modules):
        imports.append(f"from tenantry.protocol.messages.{mod_name} import {msg['name']}")
        key = msg.get("apiKey")
        if msg["type"] == "request":
            requests.append(f"    {key}: {msg['name']},")
            names.append(f"    {key}: {msg['name'].removesuffix('Request')!r},")
            listeners.append(f"    {key}: frozenset({sorted(msg.get('listeners') or [])!r}),")
        elif msg["type"] == "response":
            responses.append(f"    {key}: {msg['name']},")
        else:
            data.append(f"    {msg['name']!r}: {msg['name']},")
    return "\n".join([
        f"# Generated by tenantry.protocol.codegen from {jar_name} (Apache Kafka {kafka_version}).",
        "# Do not edit: run `make codegen`.",
        '"""Every message of the pinned Kafka version, by API key."""',
        "# ruff: noqa",
        "from __future__ import annotations\n",
        "from tenantry.protocol.schema import Message\n",
        *sorted(imports),
        "",
        f"KAFKA_VERSION = {kafka_version!r}\n",
        "REQUESTS: dict[int, type[Message]] = {", *sorted(requests, key=_key), "}\n",
        "RESPONSES: dict[int, type[Message]] = {", *sorted(responses, key=_key), "}\n",
        "API_NAMES: dict[int, str] = {", *sorted(names, key=_key), "}\n",
        "#: Which Kafka listeners serve each API ('broker', 'controller'); empty for legacy ones.",
        "LISTENERS: dict[int, frozenset[str]] = {", *sorted(listeners, key=_key), "}\n",
        "#: Header and embedded data schemas (RequestHeader, ConsumerProtocolSubscription, ...).",
        "DATA: dict[str, type[Message]] = {", *sorted(data), "}",
        "",
    ])


def _key(line: str) -> int:
    return int(line.split(":")[0])


def generate(jar: Path, out: Path, kafka_version: str) -> int:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.py"):
        old.unlink()
    registry = []
    with zipfile.ZipFile(jar) as zf:
        for info in sorted(zf.infolist(), key=lambda i: i.filename):
            if not (info.filename.startswith("common/message/") and info.filename.endswith(".json")):
                continue
            raw = zf.read(info)
            msg = json.loads(strip_comments(raw.decode()))
            source = info.filename.rsplit("/", 1)[1]
            module = Module(msg, source, hashlib.sha256(raw).hexdigest())
            mod_name = snake(msg["name"])
            (out / f"{mod_name}.py").write_text(render(module, kafka_version, jar.name))
            registry.append((mod_name, msg))
    (out / "__init__.py").write_text(render_registry(registry, kafka_version, jar.name))
    (out / "error_names.py").write_text(render_error_names(jar, kafka_version))
    (out / "api_keys.py").write_text(render_api_keys(registry, jar, kafka_version))
    return len(registry)


def _run_java(jar: Path, program: str) -> str:
    """The output of one of the Java programs beside this file, run against the jar's classes."""
    classpath = os.pathsep.join(str(p) for p in sorted(jar.parent.glob("*.jar")))
    source = Path(__file__).with_name(program)
    return subprocess.run(["java", "-cp", classpath, str(source)], check=True, capture_output=True, text=True).stdout


def render_error_names(jar: Path, kafka_version: str) -> str:
    """Kafka's error codes and names, read from the Errors enum of the jar (no schema lists them)."""
    out = _run_java(jar, "ErrorNames.java")
    entries = sorted((int(code), name) for code, name in (line.split() for line in out.splitlines() if line))
    return "\n".join([
        f"# Generated by tenantry.protocol.codegen from {jar.name} (Apache Kafka {kafka_version}).",
        "# Do not edit: run `make codegen`.",
        '"""Every Kafka error code and its name, from org.apache.kafka.common.protocol.Errors."""',
        "# ruff: noqa",
        "ERROR_NAMES: dict[int, str] = {", *(f"    {code}: {name!r}," for code, name in entries), "}",
        "",
    ])


def render_api_keys(modules: list[tuple[str, dict[str, Any]]], jar: Path, kafka_version: str) -> str:
    """The ApiKey enum, and Kafka's own rule for which response versions clients throttle themselves.

    The rule is not in the schemas: each response class of kafka-clients answers shouldClientThrottle
    (KIP-219), so the jar is asked, as for the error names.
    """
    names = {msg["apiKey"]: msg["name"].removesuffix("Request") for _, msg in modules if msg["type"] == "request"}
    members = [f"    {snake(name).upper()} = {key}" for key, name in sorted(names.items())]
    first: list[str] = []
    for line in _run_java(jar, "ClientThrottling.java").splitlines():
        key, version = line.split()
        if version != "never" and int(key) in names:
            first.append(f"    ApiKey.{snake(names[int(key)]).upper()}: {int(version)},")
    return "\n".join([
        f"# Generated by tenantry.protocol.codegen from {jar.name} (Apache Kafka {kafka_version}).",
        "# Do not edit: run `make codegen`.",
        '"""Every API key by name, and from which response version clients throttle themselves."""',
        "# ruff: noqa",
        "from enum import IntEnum\n\n",
        "class ApiKey(IntEnum):",
        '    """A Kafka API, by the key its requests carry."""\n',
        *members,
        "\n",
        "#: API key -> first response version whose clients back off by themselves on throttle_time_ms",
        "#: (KIP-219; AbstractResponse.shouldClientThrottle). For earlier versions, and for APIs not listed,",
        "#: the broker delays the response instead.",
        "CLIENT_THROTTLES_FROM: dict[int, int] = {", *first, "}",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jar", type=Path, help="kafka-clients jar (default: resolve the pinned one)")
    parser.add_argument("--kafka-version", default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "messages")
    args = parser.parse_args()
    from tenantry.localkafka.jars import DEFAULT_VERSION, schema_jar

    version = args.kafka_version or DEFAULT_VERSION
    jar = args.jar or schema_jar(version)
    count = generate(jar, args.out, version)
    print(f"generated {count} message modules from {jar.name} into {args.out}")
