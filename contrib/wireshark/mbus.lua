-- A Wireshark and tshark dissector for the local Message Bus (Mbus,
-- RFC 3259), as rmbus, UCL (RAT, VIC, SDR), libgmbus and pyMbus speak it.
--
-- Load it for one run:   tshark -X lua_script:mbus.lua -r bus.pcap
-- or for good:           cp mbus.lua ~/.local/lib/wireshark/plugins/
--
-- It decodes the UDP ports of its preference "mbus.ports", 47000 by
-- default (taking that port from the protocol that claims it otherwise;
-- Edit > Preferences > Protocols > MBUS, or `-o mbus.ports:47000,47099`), and
-- recognises a plain Mbus datagram on any other UDP port by its digest line
-- and its "mbus/1.0" header. An encrypted datagram (DES, AES or 3DES under
-- the bus's key) shows as such on a decoded port; a heuristic cannot tell
-- it from noise.
--
-- Filter fields: mbus.digest, mbus.version, mbus.seq, mbus.timestamp,
-- mbus.type ("R" or "U"), mbus.reliable, mbus.src, mbus.dst, mbus.src.element,
-- mbus.dst.element, mbus.acks, mbus.ack, mbus.command, mbus.args, mbus.arg,
-- mbus.encrypted. For example: mbus.command == "cmbs.message.deliver",
-- mbus.src contains "module:engine", mbus.reliable && mbus.seq > 10.

local mbus = Proto("mbus", "Mbus (RFC 3259 local Message Bus)")

local f = mbus.fields
f.digest = ProtoField.string("mbus.digest", "Digest")
f.version = ProtoField.string("mbus.version", "Protocol")
f.seq = ProtoField.uint32("mbus.seq", "SeqNum")
f.timestamp = ProtoField.uint64("mbus.timestamp", "TimeStamp")
f.type = ProtoField.string("mbus.type", "Type")
f.reliable = ProtoField.bool("mbus.reliable", "Reliable")
f.src = ProtoField.string("mbus.src", "Source")
f.src_element = ProtoField.string("mbus.src.element", "Element")
f.dst = ProtoField.string("mbus.dst", "Destination")
f.dst_element = ProtoField.string("mbus.dst.element", "Element")
f.acks = ProtoField.string("mbus.acks", "Acks")
f.ack = ProtoField.uint32("mbus.ack", "Ack")
f.command = ProtoField.string("mbus.command", "Command")
f.args = ProtoField.string("mbus.args", "Arguments")
f.arg = ProtoField.string("mbus.arg", "Argument")
f.encrypted = ProtoField.bytes("mbus.encrypted", "Encrypted payload")

local malformed = ProtoExpert.new("mbus.malformed", "Malformed Mbus message",
    expert.group.MALFORMED, expert.severity.ERROR)
mbus.experts = { malformed }

mbus.prefs.ports = Pref.range("UDP ports", "47000",
    "UDP ports decoded as Mbus (besides any port where a plain Mbus datagram is recognised)", 65535)

-- The digest line: base64 (RFC 3259 §11: 96 bits, 16 characters; we take
-- 12 to 44), then LF or CRLF. Returns the digest and where the message starts
-- (1-based), or nil.
local function digest_line(s)
    local digest, eol = s:match("^([A-Za-z0-9+/=]+)(\r?\n)")
    if not digest or #digest < 12 or #digest > 44 then
        return nil
    end
    return digest, #digest + #eol + 1
end

-- Whitespace, as the grammar has it: space, tab, CR and LF.
local function skip_ws(s, i)
    while i <= #s do
        local c = s:sub(i, i)
        if c ~= " " and c ~= "\t" and c ~= "\r" and c ~= "\n" then
            break
        end
        i = i + 1
    end
    return i
end

-- A SeqNum or an ack: 1 to 10 digits, at most 4294967295.
local function seqnum(text)
    return #text <= 10 and tonumber(text) <= 4294967295
end

-- A tree that keeps nothing: parse_value on it only finds where a value
-- ends.
local dry = {}
function dry:add()
    return dry
end
function dry:append_text()
    return dry
end
function dry:set_len() end
function dry:set_text() end

-- One value at s[i], added under `tree` (its range starts at tvb offset
-- base + i - 1); returns the index after it, or nil if malformed.
local function parse_value(s, i, tvb, base, tree, depth)
    if depth >= 32 then
        return nil
    end
    local c = s:sub(i, i)
    if c == "(" then
        local start = i
        local item = tree:add(f.arg, tvb(base + start - 1, 1), "")
        local n = 0
        i = i + 1
        while true do
            i = skip_ws(s, i)
            if i > #s then
                return nil
            end
            if s:sub(i, i) == ")" then
                i = i + 1
                break
            end
            i = parse_value(s, i, tvb, base, item, depth + 1)
            if not i then
                return nil
            end
            n = n + 1
        end
        item:set_len(i - start)
        item:set_text(string.format("List (%d item%s)", n, n == 1 and "" or "s"))
        return i
    elseif c == '"' then
        local j = i + 1
        while j <= #s do
            local d = s:sub(j, j)
            if d == "\\" then
                j = j + 2
            elseif d == '"' then
                break
            else
                j = j + 1
            end
        end
        if j > #s then
            return nil
        end
        tree:add(f.arg, tvb(base + i - 1, j - i + 1), s:sub(i, j)):append_text(" (String)")
        return j + 1
    elseif c == "<" then
        local j = s:find(">", i + 1, true)
        if not j then
            return nil
        end
        tree:add(f.arg, tvb(base + i - 1, j - i + 1), s:sub(i, j)):append_text(" (Data)")
        return j + 1
    else
        local word = s:match("^[^%s%(%)\"<>]+", i)
        if not word then
            return nil
        end
        local kind = "Symbol"
        if word:match("^[+-]?%d+$") then
            kind = "Integer"
        elseif word:match("^[+-]?%d*%.%d+$") or word:match("^[+-]?%d+%.%d*$") then
            kind = "Float"
        end
        tree:add(f.arg, tvb(base + i - 1, #word), word):append_text(" (" .. kind .. ")")
        return i + #word
    end
end

-- The elements of an address "(tag:value …)" at tvb offset `at`.
local function add_address(tree, field, element, tvb, at, text)
    local item = tree:add(field, tvb(at, #text), text)
    local i = 2
    while true do
        local s, e = text:find("[^%s%(%)]+", i)
        if not s then
            break
        end
        item:add(element, tvb(at + s - 1, e - s + 1), text:sub(s, e))
        i = e + 1
    end
    return item
end

-- Dissects a datagram that starts with a digest line; `port_ours` says
-- whether a payload that is no plain message may be marked encrypted.
local function dissect(tvb, pinfo, tree, port_ours)
    local s = tvb:raw()
    local digest, body = digest_line(s)
    if not digest then
        return 0
    end
    local plain = s:find("^mbus/1%.0%s", body) ~= nil
    if not plain and not port_ours then
        return 0
    end
    pinfo.cols.protocol = "MBUS"
    local root = tree:add(mbus, tvb(), "Mbus (RFC 3259)")
    root:add(f.digest, tvb(0, #digest), digest)
    if not plain then
        root:add(f.encrypted, tvb(body - 1))
        pinfo.cols.info = string.format("Encrypted (%d bytes)", tvb:len() - body + 1)
        return tvb:len()
    end
    -- The header line.
    local eol = s:find("\n", body, true) or (#s + 1)
    local line = s:sub(body, eol - 1):gsub("\r$", "")
    local version, seq, ts, kind, src, dst, acks = line:match(
        "^(mbus/1%.0)%s+(%d+)%s+(%d+)%s+([RU])%s+(%b())%s+(%b())%s+(%b())%s*$")
    if not version then
        root:add_proto_expert_info(malformed, "the header line is not mbus/1.0 SEQ TIME R|U (SRC) (DST) (ACKS)")
        pinfo.cols.info = "Malformed header"
        return tvb:len()
    end
    local at = body - 1
    local function pos(text, from)
        local p = line:find(text, from, true)
        return p
    end
    local p = 1
    root:add(f.version, tvb(at, #version), version)
    p = pos(seq, p + #version)
    if not seqnum(seq) then
        root:add_proto_expert_info(malformed, "SeqNum: 1 to 10 digits, at most 4294967295")
        pinfo.cols.info = "Malformed header"
        return tvb:len()
    end
    root:add(f.seq, tvb(at + p - 1, #seq), tonumber(seq))
    p = pos(ts, p + #seq)
    if #ts > 13 then
        root:add_proto_expert_info(malformed, "TimeStamp: 1 to 13 digits")
        pinfo.cols.info = "Malformed header"
        return tvb:len()
    end
    local tsn = tonumber(ts)
    local hi = math.floor(tsn / 4294967296)
    root:add(f.timestamp, tvb(at + p - 1, #ts), UInt64(tsn - hi * 4294967296, hi))
    p = pos(kind, p + #ts)
    root:add(f.type, tvb(at + p - 1, 1), kind)
    root:add(f.reliable, tvb(at + p - 1, 1), kind == "R")
    p = pos(src, p + 1)
    add_address(root, f.src, f.src_element, tvb, at + p - 1, src)
    p = pos(dst, p + #src)
    add_address(root, f.dst, f.dst_element, tvb, at + p - 1, dst)
    p = pos(acks, p + #dst)
    local acks_at = at + p - 1
    local ack_item = root:add(f.acks, tvb(acks_at, #acks), acks)
    for from, n, to in acks:gmatch("()(%d+)()") do
        if not seqnum(n) then
            ack_item:add_proto_expert_info(malformed, "an ack: 1 to 10 digits, at most 4294967295")
            break
        end
        ack_item:add(f.ack, tvb(acks_at + from - 1, to - from), tonumber(n))
    end
    -- The commands: a name, whitespace, one list, and so on; whitespace
    -- (line ends included) between them, and strings may hold line ends.
    -- NULs at the end are padding.
    local last = #s
    while last > 0 and s:byte(last) == 0 do
        last = last - 1
    end
    s = s:sub(1, last)
    local names = {}
    local i = skip_ws(s, eol + 1)
    while i <= #s do
        local name = s:match("^[%a][%w%._%-/]*", i)
        if not name then
            root:add_proto_expert_info(malformed, "a command without a name")
            break
        end
        local k = skip_ws(s, i + #name)
        local after = nil
        if s:sub(k, k) == "(" then
            after = k
        end
        local item = root:add(f.command, tvb(i - 1, #name), name)
        names[#names + 1] = name
        if not after then
            item:add_proto_expert_info(malformed, "a command without its argument list")
            break
        end
        -- Where the list ends (a dry run), then the list as a tree.
        local ends = parse_value(s, k, tvb, 0, dry, 0)
        if not ends then
            item:add_proto_expert_info(malformed, "arguments that are not one list")
            break
        end
        local args = item:add(f.args, tvb(k - 1, ends - k), s:sub(k, ends - 1))
        parse_value(s, k, tvb, 0, args, 0)
        item:set_len(ends - i)
        i = skip_ws(s, ends)
    end
    local info = string.format("%s seq=%s %s → %s", kind, seq, src, dst)
    if acks ~= "()" then
        info = info .. " acks=" .. acks
    end
    if #names > 0 then
        info = info .. " " .. table.concat(names, ", ")
    end
    pinfo.cols.info = info
    return tvb:len()
end

function mbus.dissector(tvb, pinfo, tree)
    return dissect(tvb, pinfo, tree, true)
end

local function heuristic(tvb, pinfo, tree)
    if tvb:len() < 30 then
        return false
    end
    local head = tvb(0, math.min(tvb:len(), 64)):raw()
    local digest, body = digest_line(head)
    if not digest or not head:find("^mbus/1%.0%s", body) then
        return false
    end
    dissect(tvb, pinfo, tree, false)
    return true
end

mbus:register_heuristic("udp", heuristic)

local udp_ports = DissectorTable.get("udp.port")
local registered = nil

local function register_ports()
    if registered then
        udp_ports:remove(registered, mbus)
    end
    registered = mbus.prefs.ports
    udp_ports:add(registered, mbus)
end

function mbus.prefs_changed()
    register_ports()
end

register_ports()
