#!/usr/bin/env python3
"""Writes the seed corpora of fuzz_dns and fuzz_policy_expr:

    tests/fuzz/gen_corpus.py [CORPUS_DIR]     (default: tests/fuzz/corpus)

dns/: real-looking guest queries and upstream answers (compression pointers,
EDNS, CNAME chains, every forwarded type, error rcodes, TC), each followed by
the option byte fuzz_dns reads from the end of its input.
policy_expr/: expressions from network.md sections 8.5 and 9, each prefixed
by the mode byte fuzz_policy_expr reads first (0 net, 1 model, 2 mcp: raw
text), and regex / glob patterns with subjects (mode 7).

Files are named after their content so re-running is idempotent; hand-made
regression seeds (regress-*) are left alone."""
import hashlib
import os
import struct
import sys

# ---- DNS ----

A, NS, CNAME, SOA, MX, TXT, AAAA, SRV, OPT, HTTPS, ANY, CAA = 1, 2, 5, 6, 15, 16, 28, 33, 41, 65, 255, 257

# fuzz_dns option byte
EXACT, TCP, EDE, FLIP, BIG = 0x01, 0x02, 0x20, 0x40, 0x80


def rcode_sel(n):
    return (n & 7) << 2


def name(text):
    out = b""
    for label in text.split(".") if text else []:
        out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def header(id_, flags, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">HHHHHH", id_, flags, qd, an, ns, ar)


def question(qname, qtype, qclass=1):
    return name(qname) + struct.pack(">HH", qtype, qclass)


def opt(size=1232, version=0, do=False, options=b""):
    ttl = (version << 16) | (0x8000 if do else 0)
    return b"\0" + struct.pack(">HHIH", OPT, size, ttl, len(options)) + options


def rr(owner, rtype, ttl, rdata, rclass=1):
    """owner: wire bytes (a name or a pointer)."""
    return owner + struct.pack(">HHIH", rtype, rclass, ttl, len(rdata)) + rdata


def ptr(off):
    return struct.pack(">H", 0xC000 | off)


def query(id_, qname, qtype, flags=0x0100, edns=None):
    msg = header(id_, flags, ar=1 if edns is not None else 0) + question(qname, qtype)
    return msg + (edns if edns is not None else b"")


def txt(*strings):
    return b"".join(bytes([len(s)]) + s for s in strings)


def dns_seeds():
    s = []
    # Guest queries.
    s.append(query(0x1a2b, "example.com", A) + bytes([0]))
    s.append(query(0x1a2c, "WwW.ExAmPle.CoM", A, edns=opt(4096)) + bytes([EDE | rcode_sel(1)]))
    s.append(query(0x0001, "api.anthropic.com", AAAA, edns=opt(1232, do=True)) + bytes([0]))
    s.append(query(0x0002, "github.com", HTTPS) + bytes([TCP]))
    s.append(query(0x0003, "_dmarc.example.org", TXT, flags=0x0110, edns=opt(512)) + bytes([BIG]))
    s.append(query(0x0004, "example.net", MX, edns=opt(1400)) + bytes([TCP | BIG]))
    s.append(query(0x0005, "_https._tcp.example.com", SRV) + bytes([0]))
    s.append(query(0x0006, "example.com", CAA, edns=opt(600)) + bytes([BIG]))
    s.append(query(0x0007, "www.example.com", CNAME) + bytes([0]))
    s.append(query(0x0008, "example.com", ANY) + bytes([0]))
    s.append(query(0x0009, "", NS) + bytes([0]))  # root
    s.append(query(0x000a, "xn--caf-dma.fr", A) + bytes([rcode_sel(2)]))
    s.append(query(0x000b, "capsem-placeholder-abc.example.com", A) + bytes([rcode_sel(3)]))
    long_name = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])
    s.append(query(0x000c, long_name, TXT, edns=opt(1232)) + bytes([EDE]))
    exfil = ".".join(["k3j4h5g6f7d8s9a0q1w2e3r4t5y6u7i8o9p0zxcvbnmlkjhgfdsa"[:50], "x", "y", "z",
                      "w", "v", "u", "exfil.example.com"])
    s.append(query(0x000d, exfil, TXT) + bytes([0]))
    # Guest queries the parser must refuse.
    s.append(query(0x0100, "example.com", A, flags=0x2100) + bytes([0]))  # opcode 4 (NOTIFY)
    s.append(header(0x0101, 0x0100) + question("example.com", A, qclass=3) + bytes([0]))  # CH
    s.append(query(0x0102, "example.com", A, edns=opt(1232, version=1)) + bytes([EDE]))
    s.append(header(0x0103, 0x0100, qd=2) + question("a.com", A) + question("b.com", A) + bytes([0]))
    s.append(header(0x0104, 0x0100, qd=0) + bytes([0]))
    s.append(query(0x0105, "example.com", A) + b"\0\0" + bytes([0]))  # trailing bytes
    s.append(header(0x0106, 0x0100) + b"\x03www" + ptr(2) + struct.pack(">HH", A, 1) + bytes([0]))
    s.append(header(0x0107, 0x0100) + ptr(12) + struct.pack(">HH", A, 1) + bytes([0]))  # self loop
    s.append(header(0x0108, 0x0100) + b"\x05caf\xc3\xa9\x02fr\x00" + struct.pack(">HH", A, 1) + bytes([0]))
    s.append(header(0x0109, 0x0100, ar=1) + question("a.com", A) + rr(b"\0", A, 0, b"\1\2\3\4") + bytes([0]))
    s.append(query(0x010a, "a.com", A, edns=opt(1232, options=struct.pack(">HH", 12, 4) + b"\0" * 4))
             + bytes([EDE]))
    s.append(query(0x010b, "a.com", A, edns=opt(1232, options=struct.pack(">HH", 12, 9))) + bytes([0]))
    s.append(b"\x12\x34\x01" + bytes([0]))  # short header

    # Upstream answers (QR set); the question they carry is the one asked.
    def resp(id_, qname, qtype, answers, flags=0x8180, ns=(), ar=()):
        return (header(id_, flags, an=len(answers), ns=len(ns), ar=len(ar)) +
                question(qname, qtype) + b"".join(answers) + b"".join(ns) + b"".join(ar))

    q12 = ptr(12)
    s.append(resp(0x2001, "example.com", A, [rr(q12, A, 300, bytes([93, 184, 216, 34]))]) + bytes([EXACT]))
    # CNAME chain with compression: www.example.com -> edge.cdn.example.net -> a.cdn.example.net
    m = header(0x2002, 0x8180, an=4) + question("www.example.com", A)
    edge_off = len(m) + 12
    m += rr(q12, CNAME, 3600, name("edge.cdn.example.net"))
    a_off = len(m) + 12
    m += rr(ptr(edge_off), CNAME, 60, b"\x01a" + ptr(edge_off + 5))
    m += rr(ptr(a_off), A, 20, bytes([192, 0, 2, 1]))
    m += rr(ptr(a_off), A, 20, bytes([192, 0, 2, 2]))
    s.append(m + bytes([0]))
    s.append(m + bytes([EXACT | FLIP]))
    s.append(m + bytes([TCP | EDE | BIG]))
    # Same chain with the records out of order, plus an unrelated record.
    m = header(0x2003, 0x8180, an=4) + question("www.example.com", A)
    m += rr(name("other.example"), A, 5, b"\x0a\0\0\1")
    m += rr(name("b.example.com"), A, 5, b"\xc6\x33\x64\x07")
    m += rr(q12, CNAME, 30, name("b.example.com"))
    m += rr(q12, CNAME, 30, name("c.example.com"))
    s.append(m + bytes([0]))
    # Long chain (10 hops, more than DNS_MAX_CHAIN).
    names = ["h%d.example.com" % i for i in range(11)]
    m = header(0x2004, 0x8180, an=11) + question(names[0], A)
    for i in range(10):
        m += rr(name(names[i]), CNAME, 100 + i, name(names[i + 1]))
    m += rr(name(names[10]), A, 1, b"\1\1\1\1")
    s.append(m + bytes([0]))
    # CNAME loop.
    m = header(0x2005, 0x8180, an=2) + question("loop.example", A)
    m += rr(q12, CNAME, 1, name("pool.example"))
    m += rr(name("pool.example"), CNAME, 1, name("loop.example"))
    s.append(m + bytes([0]))
    # 17 A records (one more than kept), TTL with the top bit set.
    m = header(0x2006, 0x8180, an=17) + question("many.example", A)
    for i in range(17):
        m += rr(q12, A, 0x80000000 if i == 3 else 60, bytes([198, 51, 100, i]))
    s.append(m + bytes([BIG]))
    # MX, SRV, TXT, CAA, CNAME queries.
    m = header(0x2007, 0x8180, an=2) + question("example.net", MX)
    m += rr(q12, MX, 300, b"\0\x0a\x04mail" + q12)
    m += rr(q12, MX, 300, b"\0\x14\x05mail2" + q12)
    s.append(m + bytes([0]))
    m = header(0x2008, 0x8180, an=1) + question("_sip._tcp.example.com", SRV)
    m += rr(q12, SRV, 300, struct.pack(">HHH", 10, 60, 5060) + b"\x03sip" + ptr(12 + 10))
    s.append(m + bytes([EXACT]))
    m = resp(0x2009, "example.org", TXT,
             [rr(q12, TXT, 60, txt(b"v=spf1 -all")), rr(q12, TXT, 60, txt(b"a" * 255, b"b" * 100))])
    s.append(m + bytes([TCP]))
    m = resp(0x200a, "example.com", CAA, [rr(q12, CAA, 60, b"\0\x05issueletsencrypt.org")])
    s.append(m + bytes([0]))
    m = resp(0x200b, "alias.example", CNAME, [rr(q12, CNAME, 60, name("target.example"))])
    s.append(m + bytes([0]))
    # Negative and error answers.
    soa = rr(ptr(12 + 8), SOA, 900, name("ns1.example") + name("hostmaster.example") +
             struct.pack(">IIIII", 1, 7200, 3600, 1209600, 300))
    s.append(resp(0x200c, "nope.example.com", A, [], flags=0x8183, ns=[soa]) + bytes([0]))
    s.append(resp(0x200d, "example.com", A, [], flags=0x8180, ns=[soa]) + bytes([0]))
    s.append(resp(0x200e, "example.com", A, [], flags=0x8182) + bytes([0]))
    s.append(resp(0x200f, "example.com", A, [], flags=0x8185) + bytes([0]))
    s.append(resp(0x2010, "example.com", TXT, [], flags=0x8380) + bytes([0]))  # TC
    s.append(resp(0x2011, "example.com", A, [rr(q12, A, 60, b"\1\2\3\4")], ar=[opt(1232)]) + bytes([0]))
    # Malformed answers.
    s.append(resp(0x2012, "example.com", A, [rr(q12, A, 60, b"\1\2\3")]) + bytes([0]))
    s.append(resp(0x2013, "example.com", A, [rr(q12, CNAME, 60, ptr(60))]) + bytes([0]))  # forward ptr
    m = header(0x2014, 0x8180, an=1) + question("x.example", A) + q12 + struct.pack(">HHIH", A, 1, 1, 40)
    s.append(m + b"\1\2\3\4" + bytes([0]))  # rdlen past the end
    m = header(0x2015, 0x8180, an=1) + question("x.example", MX)
    s.append(m + rr(q12, MX, 1, b"\0\1" + b"\x03abc" + ptr(len(m) + 12 + 6)) + bytes([0]))  # self ptr
    s.append(resp(0x2016, "example.com", TXT, [rr(q12, TXT, 1, b"\x05ab")]) + bytes([0]))
    s.append(resp(0x2017, "example.com", CAA, [rr(q12, CAA, 1, b"\0\x05iss-e")]) + bytes([0]))
    s.append(resp(0x2018, "example.com", A, [rr(q12, A, 1, b"\1\2\3\4", rclass=3)]) + bytes([0]))
    return s


# ---- policy expressions ----

NET, MODEL, MCP = 0, 1, 2

EXPRS = [
    (NET, 'process.name in ["curl", "wget"]'),
    (NET, 'dns.suspicious || dns.qtype == "TXT"'),
    (MODEL, 'model.provider == "anthropic" && model.name.startsWith("claude-opus") && model.max_tokens > 32000'),
    (MCP, 'mcp.tool == "local__fetch_http" && mcp.args.matches("https?://[^/\\"]*\\\\.corp\\\\.example")'),
    (NET, 'http.host == "api.github.com" && http.method == "POST" && http.path.glob("/**/git-receive-pack")'),
    (NET, 'http.port in [80, 443, 8443] && !has(http.sni)'),
    (NET, "http.header[\"User-Agent\"].contains('curl') || http.header['x-token'] == 'abc'"),
    (NET, 'conn.dst_ip == "192.0.2.7" && conn.dst_port >= 1024 && conn.dst_port <= 65535'),
    (NET, 'http.upgrade == "websocket" && http.scheme != "https"'),
    (NET, 'http.query.contains("token=") || http.path.endsWith(".env")'),
    (NET, 'dns.qname.endsWith(".corp.example") && !dns.suspicious'),
    (NET, 'vm.profile == "code" && vm.name.matches("^dev-[0-9]+$") && has(vm.id)'),
    (NET, 'process.exe.glob("/usr/bin/*") && process.pid > 1'),
    (MODEL, '"bash" in model.tools && model.stream && model.messages_count < 100'),
    (MODEL, 'model.protocol in ["anthropic-messages", "openai-chat"] || http.host == "api.openai.com"'),
    (MCP, 'mcp.server == "local" && mcp.method == "tools/call" && !(mcp.tool.startsWith("local__"))'),
    (MCP, 'process.name == "node" || vm.id != "vm-1"'),
    (NET, 'true'),
    (NET, '!false && (true || false) && !!true'),
    (NET, "http.path.matches('^/v1/(messages|complete)$') && http.method in ['POST']"),
    (NET, 'http.path.glob("/a/**/b?c/*.json")'),
    (NET, 'http.host == "caf\\xc3\\xa9.example" || http.path == "/\\t\\n\\\\\\""'),
    (NET, 'process.pid in [1, 2, 9007199254740991]'),
    (NET, 'http.path.matches("(a|b){2,3}[[:alpha:]]+x*")'),
    (NET, '((((((((((((((((true))))))))))))))))'),
    (NET, '!!!!!!!!!!!!!!!!true'),
    (NET, '!(!(!(!(!(!(!(!(true))))))))'),
    (NET, ' || '.join(['true'] * 64)),
    (NET, ' && '.join(['has(http.host)'] * 32) + ' || ' + ' || '.join(['http.port == 1'] * 32)),
    (NET, 'process.pid in [' + ', '.join(str(i) for i in range(256)) + ']'),
    (NET, 'process.name.matches("' + 'a' * 256 + '")'),
    # Load errors the parser must reject cleanly.
    (NET, 'http.hots == "x"'),
    (NET, 'model.name == "x"'),
    (MCP, 'http.host == "x"'),
    (NET, 'http.port == "443"'),
    (NET, 'http.host < 3'),
    (NET, 'http.host'),
    (NET, 'http.host = "x"'),
    (NET, 'http.host == "x" & true'),
    (NET, '"x" in http.host'),
    (NET, 'http.header == "x"'),
    (NET, 'http.path.matches("(a)\\\\1")'),
    (NET, 'http.path.matches("((a{1,255}){1,255}){1,255}")'),
    (NET, 'http.path.matches("[")'),
    (NET, 'process.pid == 9007199254740992'),
    (NET, '"unterminated'),
    (NET, '"\\x00"'),
    (NET, '(true'),
    (NET, 'true)'),
    (NET, ''),
    (NET, '(((((((((((((((((true)))))))))))))))))'),
    (NET, ' || '.join(['true'] * 65)),
    (NET, 'process.pid in [' + ', '.join(str(i) for i in range(257)) + ']'),
    (NET, 'http.Host == "x"'),
    (NET, 'http.host.foo("x")'),
    (NET, 'has(http.host.contains("x"))'),
]


# Mode 7: "pattern NUL subject NUL subject ..." (matches and glob, both ways).
REGEXES = [
    ("https?://[^/\"]*\\.corp\\.example", ["https://wiki.corp.example/x", "http://a.corp.examplex", "ftp://x"]),
    ("^/v1/(messages|complete)$", ["/v1/messages", "/v1/messagesx", "/v1/complete"]),
    ("[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}", ["mail bob@corp.example now", "@x.y", "a@b.c"]),
    ("x[a-z]{3}y|(ab|a)*c{,2}$", ["xabcy", "ababacc", "zzz"]),
    ("[[:alpha:]][[:digit:]]+[^[:space:]]?\\b", ["a12 ", "a1_", "9a1"]),
    ("\\<foo\\>|\\Bbar|\\`^$|\\w+\\W\\s\\S", ["foo", "xbar", "", "ab! x"]),
    ("[]a-]|[^]a]|[--/]|[[.-.]z]|a)", ["]", "-", "b", ".", "a)"]),
    ("((a{1,3}){2}|b?){0,2}x+", ["aaaaaax", "bbx", "x"]),
    ("/**/git-receive-pack", ["/org/repo.git/git-receive-pack", "/git-receive-pack", "/a/xgit-receive-pack"]),
    ("/a/*/c?d/**", ["/a/b/cxd/", "/a/b/c/d/e", "/a//cxd/zz"]),
    ("*.(json)+[x]{1}|^$\\", ["a.(json)+[x]{1}|^$\\", "a/b.json"]),
]


def write(dirpath, data):
    os.makedirs(dirpath, exist_ok=True)
    path = os.path.join(dirpath, hashlib.sha1(data).hexdigest()[:16])
    with open(path, "wb") as f:
        f.write(data)


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    seeds = dns_seeds()
    for d in seeds:
        write(os.path.join(root, "dns"), d)
    for scope, text in EXPRS:
        write(os.path.join(root, "policy_expr"), bytes([scope]) + text.encode())
    for pattern, subjects in REGEXES:
        data = bytes([7]) + pattern.encode() + b"".join(b"\0" + x.encode() for x in subjects)
        write(os.path.join(root, "policy_expr"), data)
    print("dns: %d seeds, policy_expr: %d seeds" % (len(seeds), len(EXPRS) + len(REGEXES)))


if __name__ == "__main__":
    main()
