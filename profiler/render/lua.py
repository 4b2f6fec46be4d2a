"""The Lmod form: a modulefile that applies the rule when loaded (``module load blasprof``).

Lmod runs modulefiles in its own Lua interpreter, which inherits the shell's environment
and affinity, so the rule of ``profiler.budget`` (and the dispatcher's rules of
``profiler.detect``) is written here in Lua, from the same constants. Variables are set with
``pushenv``, so that ``module unload`` gives back what was there before; notes go through
``LmodMsgRaw`` (Lmod silences plain writes to stderr while a modulefile runs).
"""

from __future__ import annotations

from profiler.render.checked import Bundle, comment, rule_constants

__all__ = ["render_lua"]

_CODE = r"""
local function getenv(name) return os.getenv(name) or "" end

local function note(text)
  if mode() == "load" then LmodMsgRaw("blasprof: " .. text .. "\n") end
end

local function contains(list, value)
  for _, item in ipairs(list) do if item == value then return true end end
  return false
end

local function digits(value)
  if value == "" or not value:match("^[0-9]+$") then return nil end
  return (value:gsub("^0+", ""))
end

local function count(value)
  local d = digits(value)
  if d == nil or #d < 1 or #d > 5 then return nil end
  return tonumber(d)
end

local function index(value)
  local d = digits(value)
  if d == nil or #d > 5 then return nil end
  return tonumber(d ~= "" and d or "0")
end

local function whole(value)
  if #value < 1 or #value > 18 or not value:match("^[0-9]+$") then return nil end
  return tonumber(value)
end

local function read_text(path)
  local fh = io.open(path, "rb")
  if fh == nil then return "" end
  local text = fh:read("*a") or ""
  fh:close()
  return text
end

local function strip(text)
  return (text:gsub("^%s+", ""):gsub("%s+$", ""))
end

local function split(text, sep)
  local parts, start = {}, 1
  while true do
    local at = text:find(sep, start, true)
    if at == nil then parts[#parts + 1] = text:sub(start); return parts end
    parts[#parts + 1] = text:sub(start, at - 1)
    start = at + #sep
  end
end

local function partition(text, sep)
  local at = text:find(sep, 1, true)
  if at == nil then return text, "", "" end
  return text:sub(1, at - 1), sep, text:sub(at + #sep)
end

local function cpu_list(text)
  local cpus = {}
  for _, item in ipairs(split(strip(text), ",")) do
    local low, _, high = partition(item, "-")
    local lo, hi = index(low), index(high ~= "" and high or low)
    if lo == nil or hi == nil or hi < lo then return nil end
    for cpu = lo, hi do cpus[#cpus + 1] = cpu end
  end
  return cpus
end

local function tasks_on_node(text, node)
  local seen, largest = 0, 0
  for _, item in ipairs(split(text, ",")) do
    local value, sep, rep = partition(item, "(x")
    local times = 1
    if sep ~= "" then
      times = nil
      if rep:sub(-1) == ")" then times = count(rep:sub(1, -2)) end
    end
    local number = count(value)
    if number == nil or times == nil then return nil end
    if node ~= nil and seen <= node and node < seen + times then return number end
    seen = seen + times
    if number > largest then largest = number end
  end
  return largest
end

local function affinity_cpus()
  for _, line in ipairs(split(read_text("/proc/self/status"), "\n")) do
    local key, _, value = partition(line, ":")
    if key == "Cpus_allowed_list" then return cpu_list(value) or {} end
  end
  return {}
end

local function cgroup_quota()
  for _, line in ipairs(split(read_text("/proc/self/cgroup"), "\n")) do
    local hierarchy, _, rest = partition(line, ":")
    local controllers, _, rel = partition(rest, ":")
    rel = rel:gsub("^/+", ""):gsub("/+$", "")
    local found = nil
    if hierarchy == "0" and controllers == "" then
      while true do
        local f = {}
        for word in read_text("/sys/fs/cgroup/" .. rel .. "/cpu.max"):gmatch("%S+") do
          f[#f + 1] = word
        end
        if #f == 2 and whole(f[1]) and whole(f[2]) then
          local quota = math.floor(whole(f[1]) / math.max(1, whole(f[2])))
          if found == nil or quota < found then found = quota end
        end
        if rel == "" then break end
        rel = rel:match("^(.*)/[^/]*$") or ""
      end
    elseif contains(split(controllers, ","), "cpu") then
      for _, base in ipairs({"/sys/fs/cgroup/cpu/" .. rel, "/sys/fs/cgroup/cpu"}) do
        local q = strip(read_text(base .. "/cpu.cfs_quota_us"))
        local p = strip(read_text(base .. "/cpu.cfs_period_us"))
        if whole(q) and whole(p) and whole(q) > 0 and whole(p) > 0 then
          found = math.floor(whole(q) / whole(p))
          break
        end
      end
    end
    if found ~= nil then return found end
  end
  return nil
end

local function usable_here()
  local usable = #affinity_cpus()
  if usable < 1 then usable = 1 end
  local quota = cgroup_quota()
  if quota ~= nil then usable = math.max(1, math.min(usable, quota)) end
  return usable
end

local function cores_here()
  local cpus, seen, total = affinity_cpus(), {}, 0
  for _, cpu in ipairs(cpus) do
    local path = "/sys/devices/system/cpu/cpu" .. cpu .. "/topology/thread_siblings_list"
    local siblings = strip(read_text(path))
    if siblings == "" then return math.max(1, #cpus) end
    if not seen[siblings] then seen[siblings] = true; total = total + 1 end
  end
  return math.max(1, total)
end

local function launcher_workers()
  for _, launcher in ipairs(LAUNCHERS) do
    local value = getenv(launcher[1])
    if value ~= "" then
      local found
      if launcher[2] == "slurm" then
        found = tasks_on_node(value, index(getenv("SLURM_NODEID")))
      else
        found = count(value)
      end
      if found then return found end
    end
  end
  return nil
end

local function words(text, keep)
  local found, word = {}, ""
  for i = 1, #text do
    local char = text:sub(i, i)
    if keep:find(char, 1, true) then
      word = word .. char
    elseif word ~= "" then
      found[#found + 1] = word
      word = ""
    end
  end
  if word ~= "" then found[#found + 1] = word end
  return found
end

local function is_name(value)
  if #value < 1 or #value > 64 or ("._-"):find(value:sub(1, 1), 1, true) then return false end
  for i = 1, #value do
    if not NAME_CHARS:find(value:sub(i, i), 1, true) then return false end
  end
  return true
end

local function machine_fingerprint()
  local model = ""
  local fh = io.open("/proc/cpuinfo", "rb")
  if fh ~= nil then
    for line in fh:lines() do
      if line:sub(1, 10) == "model name" then
        local _, _, value = partition(line, ":")
        model = value
        break
      end
    end
    fh:close()
  end
  local online = cpu_list(read_text("/sys/devices/system/cpu/online"))
  return table.concat(words(model, CPU_KEY_CHARS), "-") .. "|" .. (online and #online or 0)
end

local function detect()
  local name = getenv("BLASPROF_NODE_TYPE")
  if name ~= "" then
    if is_name(name) then return name end
    note("BLASPROF_NODE_TYPE is not a node type name; ignored")
  end
  local partition_name = getenv("SLURM_JOB_PARTITION")
  for _, rule in ipairs(RULES.partition) do
    if partition_name == rule[1] then return rule[2] end
  end
  local asked = words(getenv("SLURM_JOB_CONSTRAINTS"), FEATURE_CHARS)
  for _, rule in ipairs(RULES.feature) do
    if contains(asked, rule[1]) then return rule[2] end
  end
  if #RULES.hostname > 0 then
    local host = strip(read_text("/proc/sys/kernel/hostname"))
    local short = partition(host, ".")
    for _, rule in ipairs(RULES.hostname) do
      if host:match(rule[1]) or short:match(rule[1]) then return rule[2] end
    end
  end
  if #RULES.cpu > 0 then
    local mine = machine_fingerprint()
    for _, rule in ipairs(RULES.cpu) do
      if mine == rule[1] then return rule[2] end
    end
  end
  return nil
end

local node_type = FIXED
if node_type == nil then node_type = detect() end

local workers = launcher_workers()
if workers == nil then
  workers = count(getenv("BLASPROF_WORKERS"))
  if workers == nil then
    if getenv("BLASPROF_WORKERS") ~= "" then note("BLASPROF_WORKERS " .. BAD_COUNT .. "; using 1") end
    workers = 1
  end
end
local declared = count(getenv("BLASPROF_CPUS"))
if declared == nil and getenv("BLASPROF_CPUS") ~= "" then
  note("BLASPROF_CPUS " .. BAD_COUNT .. "; ignored")
end
local usable = declared or usable_here()
local job = declared or count(getenv("SLURM_CPUS_ON_NODE")) or usable
local share = math.min(math.floor(job / workers), usable, count(getenv("SLURM_CPUS_PER_TASK")) or usable)
local entry = node_type and PRESETS[node_type] or nil
local size_class, calibrated, obeyed
if entry ~= nil then
  size_class = getenv("BLASPROF_SIZE_CLASS")
  if entry.classes[size_class] == nil then
    if size_class ~= "" then
      note("BLASPROF_SIZE_CLASS is not one of: " .. table.concat(entry.order, " ") .. "; using " .. entry.default)
    end
    size_class = entry.default
  end
  for _, row in ipairs(entry.classes[size_class]) do
    if row[1] <= workers then calibrated = row[2] end
  end
  obeyed = entry.obeyed
else
  size_class = "-"
  local cores = math.min(cores_here(), usable)
  calibrated = math.max(1, math.floor(cores / workers))
  obeyed = DEFAULT_OBEYED
end
local threads = math.max(1, math.min(calibrated, share))
local value = string.format("%d", threads)
if entry == nil then
  local which = node_type and ("node type " .. node_type) or "this node"
  note("no preset for " .. which .. " (known: " .. KNOWN .. "); " .. value
    .. " thread(s) per process: one per CPU of its share, at most one per core")
end

local before = count(getenv("BLASPROF_PRESET"):match("[^:]*$"))
local ours = {}
if before then ours = split(getenv("BLASPROF_PRESET_SET"), ":") end
local watched = {}
for _, name in ipairs(THREAD_VARIABLES) do watched[#watched + 1] = name end
for _, name in ipairs(WATCHED_VARIABLES) do
  if contains(obeyed, name) then watched[#watched + 1] = name end
end
local users = {}
for _, name in ipairs(watched) do
  local current = getenv(name)
  if current ~= "" and not (contains(ours, name) and current == string.format("%d", before or -1)) then
    if contains(FREE_VARIABLES, name) or count(current) then
      users[#users + 1] = name
    else
      note(name .. " " .. BAD_COUNT .. "; ignored")
    end
  end
end
local override = getenv("BLASPROF_OVERRIDE") == "1"
local blocked = false
if not override then
  for _, name in ipairs(users) do
    if contains(obeyed, name) then blocked = true end
  end
end
local given = {}
for _, name in ipairs(THREAD_VARIABLES) do
  if override or not (contains(users, name) or (blocked and contains(obeyed, name))) then
    pushenv(name, value)
    given[#given + 1] = name
  end
end
for _, name in ipairs(watched) do
  if override and contains(users, name) and not contains(given, name) then unsetenv(name) end
end
for _, name in ipairs(THREAD_VARIABLES) do
  if contains(ours, name) and getenv(name) ~= "" and not contains(users, name)
      and not contains(given, name) then
    unsetenv(name)
  end
end
pushenv("BLASPROF_PRESET", (node_type or "-") .. ":" .. size_class .. ":" .. value)
if #given > 0 then
  pushenv("BLASPROF_PRESET_SET", table.concat(given, ":"))
elseif getenv("BLASPROF_PRESET_SET") ~= "" then
  unsetenv("BLASPROF_PRESET_SET")
end
if #users > 0 and override then
  note("BLASPROF_OVERRIDE=1: replacing " .. table.concat(users, " ") .. " with " .. value)
elseif #users > 0 then
  note("keeping " .. table.concat(users, " ") .. " as set before the preset (it would set "
    .. value .. "); BLASPROF_OVERRIDE=1 replaces them")
end
"""


def _lua(value: object) -> str:
    """A checked value (str of a fixed alphabet, int, or nested tuples/dicts) as Lua."""
    if isinstance(value, bool):
        raise TypeError("no booleans in presets")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        assert '"' not in value and "\\" not in value and "\n" not in value
        return f'"{value}"'
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in value.items()) + "}"
    return "{" + ", ".join(_lua(v) for v in value) + "}"


def _glob(pattern: str) -> str:
    """A hostname pattern (``*``, ``?`` and ``[A-Za-z0-9._-]``) as an anchored Lua pattern."""
    out = {"*": ".*", "?": ".", ".": "%.", "-": "%-"}
    return "^" + "".join(out.get(c, c) for c in pattern) + "$"


def render_lua(b: Bundle, directory: str, file_name: str, presets: object = None) -> str:
    """The Lmod modulefile of bundle ``b``."""
    what = f"node type {b.fixed}" if b.fixed else f"every node type ({b.names()})"
    head = [
        f"-- blasprof preset for {what}, as an Lmod modulefile:",
        "--   module use " + comment(directory) + "; module load " + file_name[: -len(".lua")],
        "-- Written by `blasprof presets write`; see `blasprof env --help` for the rule.",
    ]
    for e in b.entries:
        head += ["--", *(f"-- {line}" for line in e.summary)]
    presets = {
        e.name: {
            "default": e.default,
            "order": tuple(name for name, _ in e.classes),
            "classes": dict(e.classes),
            "obeyed": e.obeyed,
        }
        for e in b.entries
    }
    rules = b.rules.data() if b.rules is not None else None
    if rules is not None:
        rules["hostname"] = tuple((_glob(v), n) for v, n in rules["hostname"])
    constants = {
        **rule_constants(),
        "PRESETS": presets,
        "RULES": rules if rules is not None else {},
        "KNOWN": b.names(),
    }
    lines = [
        *head,
        'whatis("blasprof: BLAS/OpenMP thread variables for this node, its CPUs and layout")',
        *(f"local {name} = {_lua(value)}" for name, value in constants.items()),
        f"local FIXED = {_lua(b.fixed) if b.fixed else 'nil'}",
    ]
    return "\n".join(lines) + "\n" + _CODE.lstrip("\n")
