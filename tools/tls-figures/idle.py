"""Holds N idle connections (TLS or plain, each after one Submit and its
ack) to a server on 127.0.0.1:PORT and prints the server's RSS per
connection. Usage: idle.py PORT N SERVER_PID plain|tls CA_PEM"""
import socket, ssl, sys, time
port = int(sys.argv[1]); n = int(sys.argv[2]); pid = int(sys.argv[3]); tls = sys.argv[4] == "tls"
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
ctx = ssl.create_default_context(cafile=sys.argv[5])
ctx.set_alpn_protocols(["lenproto/1"])
frame = bytes.fromhex("0000000e02") + b"00000001" + b"x"
def one():
    s = socket.create_connection(("127.0.0.1", port))
    if tls:
        s = ctx.wrap_socket(s, server_hostname="localhost")
    s.sendall(frame)
    got = b""
    while len(got) < 14:
        got += s.recv(14 - len(got))
    assert got[4] == 0x82, got
    return s
warm = [one() for _ in range(10)]
time.sleep(0.5)
before = rss()
conns = [one() for _ in range(n)]
time.sleep(1.0)
after = rss()
print(f"{'tls' if tls else 'plain'}: {n} idle connections (each after one Submit): RSS {before} -> {after} KiB, {(after-before)/n:.2f} KiB per connection")
