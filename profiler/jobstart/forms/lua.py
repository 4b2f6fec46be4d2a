"""The Lmod form: a modulefile that applies the sh engine's answer (``module load blasprof``).

Lmod runs modulefiles in its own Lua interpreter, which inherits the shell's environment and
affinity. The modulefile holds no copy of the rule: on load it runs the sh form beside its
``modulefiles/`` directory with ``BLASPROF_EMIT=lmod``, which prints ``set``/``unset``/
``note`` lines, checks every line against a fixed list of names and a small alphabet of
values, and applies all of them or none. Every change is a ``pushenv`` (``false`` to unset),
and the names it changed are kept in ``BLASPROF_LMOD``, so that ``module unload`` pops
exactly those and every variable gets back the value it had before the load, whatever the
job changed in between. Notes go through ``LmodMsgRaw`` (Lmod silences plain writes to
stderr while a modulefile runs).
"""

from __future__ import annotations

from profiler.jobstart.budget import THREAD_VARIABLES, WATCHED_VARIABLES
from profiler.jobstart.forms.checked import Bundle, comment

__all__ = ["RECORD", "render_lua"]

#: what a load changed, for its unload
RECORD = "BLASPROF_LMOD"

_CODE = r"""
local function known(name)
  for _, item in ipairs(NAMES) do if item == name then return true end end
  return false
end

local function note(text)
  LmodMsgRaw("blasprof: " .. text:gsub("[%c\128-\255]", "?") .. "\n")
end

local function quoted(text)
  return "'" .. text:gsub("'", "'\\''") .. "'"
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function base64(text)  -- as Lmod stores a stack's values (Lua 5.1 has no bit operators)
  local out = {}
  for i = 1, #text, 3 do
    local a, b, c = text:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local chars = ""
    for k = 3, 0, -1 do
      local at = math.floor(n / 64 ^ k) % 64 + 1
      chars = chars .. B64:sub(at, at)
    end
    if b == nil then chars = chars:sub(1, 2) .. "==" elseif c == nil then chars = chars:sub(1, 3) .. "=" end
    out[#out + 1] = chars
  end
  return table.concat(out)
end

local function load()
  local presets = myFileName():match("^(.*)/modulefiles/[^/]*$")
  local script = presets and presets .. "/" .. ENGINE
  local fh = script and io.open(script, "rb")
  if fh == nil then
    note("cannot read " .. (script or ENGINE) .. "; no thread variable set")
    return
  end
  fh:close()
  local out = subprocess("BLASPROF_EMIT=lmod /bin/sh " .. quoted(script) .. " </dev/null") or ""
  local changes, notes = {}, {}
  for line in out:gmatch("[^\n]+") do
    local verb, rest = line:match("^(%l+) (.*)$")
    local name, value
    if verb == "set" then
      name, value = rest:match("^([%u_]+) ([%w:._=-]+)$")
    elseif verb == "unset" then
      name, value = rest:match("^([%u_]+)$"), false
    end
    if verb == "note" then
      notes[#notes + 1] = rest
    elseif name ~= nil and known(name) and (value == false or #value <= 1000) then
      changes[#changes + 1] = {name, value}
    else
      note(ENGINE .. " printed a line this modulefile does not apply; no thread variable set")
      return
    end
  end
  for _, text in ipairs(notes) do note(text) end
  local names = {}
  for _, change in ipairs(changes) do
    local name, value = change[1], change[2]
    -- the value from before goes to the bottom of the stack here, not only when Lmod first
    -- meets the variable: after an unload in the same command (a reload) it would not
    local stack, current = "__LMOD_STACK_" .. name, os.getenv(name)
    if os.getenv(stack) == nil and current ~= nil then setenv(stack, base64(current)) end
    pushenv(name, value)
    names[#names + 1] = name
  end
  if #names > 0 then pushenv(RECORD, table.concat(names, ":")) end
end

local function unload()
  local names = {}
  for name in (os.getenv(RECORD) or ""):gmatch("[^:]+") do
    if known(name) then names[#names + 1] = name end
  end
  names[#names + 1] = RECORD
  for _, name in ipairs(names) do
    -- Lmod keeps a value from before the load at the bottom of the variable's stack even
    -- once it is back; where no other module pushed one, the stack goes with ours
    local stack = "__LMOD_STACK_" .. name
    local _, depth = (os.getenv(stack) or ""):gsub("[^:]+", "")
    pushenv(name, false)
    if depth <= 2 then setenv(stack, "") end
  end
end

if mode() == "load" then
  load()
elseif mode() == "unload" then
  unload()
end
"""


def _lua(text: str) -> str:
    """A name of a fixed alphabet (checked when rendered) as a Lua string."""
    assert text.replace("-", "").replace("_", "").replace(".", "").isalnum(), text
    return f'"{text}"'


def render_lua(b: Bundle, directory: str, file_name: str, presets: object = None) -> str:
    """The Lmod modulefile of bundle ``b``: it applies what the sh form of ``b`` prints."""
    from profiler.jobstart.forms import file_name as form_file

    what = f"node type {b.single_type}" if b.single_type else f"every node type ({b.names()})"
    engine = form_file(b.single_type, "sh")
    head = [
        f"-- blasprof preset for {what}, as an Lmod modulefile:",
        "--   module use "
        + comment(f"{directory}/modulefiles")
        + "; module load "
        + file_name[: -len(".lua")],
        f"-- The rule runs in /bin/sh from {engine} in the directory above this one;",
        "-- `module unload` gives every variable back the value it had before the load.",
        "-- Written by `blasprof presets write`; see `blasprof env --help` for the rule.",
    ]
    for e in b.entries:
        head += ["--", *(f"-- {line}" for line in e.summary)]
    names = (*THREAD_VARIABLES, *WATCHED_VARIABLES, "BLASPROF_PRESET", "BLASPROF_PRESET_SET")
    lines = [
        *head,
        'whatis("blasprof: BLAS/OpenMP thread variables for this node, its CPUs and layout")',
        f"local ENGINE = {_lua(engine)}",
        f"local RECORD = {_lua(RECORD)}",
        "local NAMES = {" + ", ".join(_lua(n) for n in names) + "}",
    ]
    return "\n".join(lines) + "\n" + _CODE.lstrip("\n")
