import Foundation
import VigilEvents
import VigilTestSupport
import XCTest

/// The default network detections, each triggered for real in a Docker container (its own
/// network namespace: every packet stays in it), each with a benign look-alike that stays quiet.
extension DefaultRulesTests {
    func testConnectionToTheCloudMetadataAddressFromAContainer() throws {
        // The metadata address on the container's own loopback (NET_ADMIN to add it): the connect
        // is refused at once and nothing leaves the container.
        let container = try DockerTestEngine.startContainer(for: self, options: ["--cap-add", "NET_ADMIN"])
        dockerExec(container, "ip addr add 169.254.169.254/32 dev lo && ip addr add 169.254.169.253/32 dev lo")
        let rule = "Connection to the cloud metadata address from a container"
        let hits = try alerts(rule, metadata: true) { dockerExec(container, "nc -w 1 169.254.169.254 80 </dev/null") }
        let hit = try XCTUnwrap(hits.first, "the connect to 169.254.169.254")
        XCTAssertEqual(Fields.named("fd.sip")?.extract(hit.event, nil), .string("169.254.169.254"))
        XCTAssertTrue(hit.output.contains("169.254.169.254:80"), hit.output)
        let benign = try alerts(rule, metadata: true) { dockerExec(container, "nc -w 1 169.254.169.253 80 </dev/null") }
        XCTAssertEqual(benign.map(\.output), [], "a neighbouring link-local address is not the metadata service")
    }

    func testUnexpectedListeningSocketInAContainer() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        let rule = "Unexpected listening socket in a container"
        let hits = try alerts(rule, metadata: true) { dockerExec(container, "timeout 1 nc -l -p 4444") }
        let hit = try XCTUnwrap(hits.first, "nc listening on 4444")
        XCTAssertEqual(Fields.named("fd.lport")?.extract(hit.event, nil), .uint(4444))
        XCTAssertTrue(hit.output.contains("port=4444"), hit.output)
        let benign = try alerts(rule, metadata: true) { dockerExec(container, "timeout 1 nc -l -p 8080") }
        XCTAssertEqual(benign.map(\.output), [], "8080 is an expected service port")
    }

    func testPacketSocketCreatedInAContainer() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        let rule = "Packet socket created in a container"
        let hits = try alerts(rule, metadata: true) { dockerExec(container, "arping -c 1 -w 1 -I lo 127.0.0.1") }
        XCTAssertFalse(hits.isEmpty, "arping opens an AF_PACKET socket")
        let benign = try alerts(rule, metadata: true) { dockerExec(container, "ping -c 1 -W 1 127.0.0.1") }
        XCTAssertEqual(benign.map(\.output), [], "ping's ICMP socket is no packet socket")
    }

    func testReverseShellInAContainer() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        let rule = "Network socket moved onto standard input or output in a container"
        // A listener that tells the shell to exit; the reverse shell connects to it (retrying
        // until the listener is up: no sleep), busybox nc -e moving the socket onto 0 and 1.
        let hits = try alerts(rule, metadata: true) {
            dockerExec(container, "(echo exit | nc -l -p 5555 >/dev/null) & until nc 127.0.0.1 5555 -e /bin/sh; do :; done; wait")
        }
        let hit = try XCTUnwrap(hits.first, "nc -e /bin/sh: the socket on stdin")
        XCTAssertTrue(hit.output.contains("127.0.0.1:5555"), hit.output)
        let benign = try alerts(rule, metadata: true) {
            dockerExec(container, "(echo bye | nc -l -p 5556 >/dev/null) & until nc 127.0.0.1 5556 </dev/null >/dev/null; do :; done; cat </etc/hostname >/dev/null; wait")
        }
        XCTAssertEqual(benign.map(\.output), [], "a plain client and a file on stdin are no reverse shell")
    }

    /// The pool's name comes from the DNS answer the client's resolver received (Docker's embedded
    /// DNS answering for a network alias): busybox nc resolves it with glibc (recvfrom on a socket
    /// to 127.0.0.11:53), then connects. A server under a name that is no pool stays quiet.
    func testConnectionToACryptoMiningPoolByName() throws {
        let network = try DockerTestEngine.createNetwork(for: self)
        _ = try DockerTestEngine.startContainer(for: self, command: ["sh", "-c", "while :; do nc -l -p 3333 </dev/null; done"],
                                                options: ["--network-alias", "pool.supportxmr.com", "--network-alias", "mirror.example.org"],
                                                network: network)
        let client = try DockerTestEngine.startContainer(for: self, network: network)
        let rule = "Connection to a crypto-mining pool"
        let hits = try alerts(rule, metadata: true) { dockerExec(client, "echo hi | nc -w 1 pool.supportxmr.com 3333") }
        let hit = try XCTUnwrap(hits.first, "nc to pool.supportxmr.com")
        XCTAssertEqual(Fields.named("fd.sip.name")?.extract(hit.event, nil), .string("pool.supportxmr.com"))
        XCTAssertTrue(hit.output.contains("pool=pool.supportxmr.com"), hit.output)
        XCTAssertTrue(hit.output.contains("container=\(client.name)"), hit.output)
        let benign = try alerts(rule, metadata: true) { dockerExec(client, "echo hi | nc -w 1 mirror.example.org 3333") }
        XCTAssertEqual(benign.map(\.output), [], "the same server under a name that is no pool")
    }

    /// The same with a resolver that reads its answer with read(2) on a connected UDP socket, as
    /// Go's does: python3 in a container sends the query to Docker's embedded DNS (127.0.0.11:53),
    /// reads the answer with os.read and connects to the address in it. The read is armed by the
    /// connect in the kernel; the pool's name comes from it. The same server under a name that is
    /// no pool stays quiet.
    func testConnectionToACryptoMiningPoolNamedByAnAnswerReadWithRead() throws {
        let network = try DockerTestEngine.createNetwork(for: self)
        _ = try DockerTestEngine.startContainer(for: self, command: ["sh", "-c", "while :; do nc -l -p 3333 </dev/null; done"],
                                                options: ["--network-alias", "pool.supportxmr.com", "--network-alias", "mirror.example.org"],
                                                network: network)
        let client = try DockerTestEngine.startContainer(for: self, image: DockerTestEngine.pythonImage,
                                                         command: ["python3", "-c", "import time; time.sleep(60)"], network: network)
        let resolve = """
            import os, socket, struct, sys
            query = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
            query += b"".join(bytes([len(p)]) + p.encode() for p in sys.argv[1].split(".")) + b"\\0" + struct.pack(">HH", 1, 1)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.connect(("127.0.0.11", 53))
            s.send(query)
            answer = os.read(s.fileno(), 512)
            for _ in range(50):
                try:
                    socket.create_connection((socket.inet_ntoa(answer[-4:]), 3333), timeout=1).close()
                    break
                except OSError:
                    pass
            """
        let rule = "Connection to a crypto-mining pool"
        let hits = try alerts(rule, metadata: true) {
            _ = DockerTestEngine.run(["docker", "exec", client.name, "python3", "-c", resolve, "pool.supportxmr.com"])
        }
        let hit = try XCTUnwrap(hits.first, "python3 to pool.supportxmr.com, resolved with read")
        XCTAssertEqual(Fields.named("fd.sip.name")?.extract(hit.event, nil), .string("pool.supportxmr.com"))
        XCTAssertTrue(hit.output.contains("process=python3"), hit.output)
        XCTAssertTrue(hit.output.contains("container=\(client.name)"), hit.output)
        let benign = try alerts(rule, metadata: true) {
            _ = DockerTestEngine.run(["docker", "exec", client.name, "python3", "-c", resolve, "mirror.example.org"])
        }
        XCTAssertEqual(benign.map(\.output), [], "the same server under a name that is no pool")
    }

    /// A fake pool (python3 on the Docker bridge, answering each request line with a result and a
    /// job it pushes: the pool's own `mining.notify`) and two miners: busybox nc writing a
    /// cgminer's mining.subscribe (write), python3 sending XMRig's login (sendto). Quiet: JSON-RPC
    /// POSTed over HTTP, a raw JSON-RPC line of another protocol, and the pool's answers.
    func testCryptoMiningPoolProtocolConnection() throws {
        let network = try DockerTestEngine.createNetwork(for: self)
        let server = """
            import socketserver
            class Pool(socketserver.StreamRequestHandler):
                def handle(self):
                    while self.rfile.readline():
                        self.wfile.write(b'{"id":1,"result":true,"error":null}\\n{"id":null,"method":"mining.notify","params":["job"]}\\n')
            socketserver.ThreadingTCPServer.allow_reuse_address = True
            socketserver.ThreadingTCPServer(("", 3333), Pool).serve_forever()
            """
        let pool = try DockerTestEngine.startContainer(for: self, image: DockerTestEngine.pythonImage, command: ["python3", "-c", server],
                                                       options: ["--network-alias", "pool.example.org"], network: network)
        let miner = try DockerTestEngine.startContainer(for: self, network: network)
        let python = try DockerTestEngine.startContainer(for: self, image: DockerTestEngine.pythonImage, command: ["python3", "-c", "import time; time.sleep(60)"],
                                                         network: network)
        dockerExec(miner, "timeout 30 sh -c 'until echo | nc -w 1 pool.example.org 3333 >/dev/null; do :; done'") // the pool is up
        func send(_ line: String) -> String {
            "import socket; s = socket.create_connection((\"pool.example.org\", 3333)); s.sendall(\(line)); s.recv(200)"
        }
        let rule = "Crypto-mining pool protocol (stratum)"
        let hits = try alerts(rule, metadata: true) {
            dockerExec(miner, #"printf '{"id":1,"method":"mining.subscribe","params":["cgminer/4.10.0"]}\n' | nc -w 1 pool.example.org 3333 >/dev/null"#)
            _ = DockerTestEngine.run(["docker", "exec", python.name, "python3", "-c",
                                      send(#"b'{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44AFFq5kSiGBoZ","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/11.2.0"}}\n'"#)])
        }
        XCTAssertEqual(hits.map { Fields.named("net.stratum.method")?.extract($0.event, nil) }, [.string("mining.subscribe"), .string("login")],
                       "\(hits.map(\.output))")
        let subscribe = try XCTUnwrap(hits.first)
        XCTAssertEqual(subscribe.event.container.fullID, miner.id)
        XCTAssertTrue(subscribe.output.contains("method=mining.subscribe"), subscribe.output)
        XCTAssertTrue(subscribe.output.contains(":3333"), subscribe.output)
        let login = try XCTUnwrap(hits.last)
        XCTAssertEqual(login.event.container.fullID, python.id)
        XCTAssertTrue(login.output.contains("method=login"), login.output)
        XCTAssertFalse(hits.contains { $0.event.container.fullID == pool.id }, "the pool's mining.notify is no client's first payload")

        let benign = try alerts(rule, metadata: true) {
            dockerExec(miner, #"printf 'POST / HTTP/1.1\r\nHost: pool.example.org\r\nContent-Type: application/json\r\nContent-Length: 51\r\n\r\n{"jsonrpc":"2.0","method":"eth_blockNumber","id":1}' | nc -w 1 pool.example.org 3333 >/dev/null"#)
            _ = DockerTestEngine.run(["docker", "exec", python.name, "python3", "-c",
                                      send(#"b'{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":1}\n'"#)])
        }
        XCTAssertEqual(benign.map(\.output), [], "JSON-RPC over HTTP, another protocol's JSON-RPC line")
    }

    /// busybox nc run with -e is a program handed to a remote peer; the same nc without it is not.
    /// Run through a link named nc by its path, so the shell execs it (busybox sh runs an applet
    /// named bare in-process, with no exec).
    func testNetcatRunningAProgramForARemotePeer() throws {
        let container = try DockerTestEngine.startContainer(for: self)
        dockerExec(container, "ln -s /bin/busybox /tmp/nc")
        let rule = "Netcat running a program for a remote peer"
        let hits = try alerts(rule, metadata: true) { dockerExec(container, "/tmp/nc -w 1 127.0.0.1 5557 -e /bin/true") }
        let hit = try XCTUnwrap(hits.first, "nc ... -e /bin/true")
        XCTAssertTrue(hit.output.contains("cmdline=nc -w 1 127.0.0.1 5557 -e /bin/true"), hit.output)
        XCTAssertTrue(hit.output.contains("container=\(container.name)"), hit.output)
        let benign = try alerts(rule, metadata: true) { dockerExec(container, "/tmp/nc -w 1 127.0.0.1 5557 </dev/null") }
        XCTAssertEqual(benign.map(\.output), [], "a plain nc client")
        // socat on the host (scripts/setup.sh --test installs it): an EXEC: address, then none.
        let socat = try alerts(rule) { _ = try runProgram("/usr/bin/socat", ["-u", "OPEN:/dev/null", "EXEC:/bin/true"]) }
        XCTAssertEqual(socat.count, 1, "\(socat.map(\.output))")
        XCTAssertTrue(socat.first?.output.contains("cmdline=socat -u OPEN:/dev/null EXEC:/bin/true parent=") ?? false, "\(socat.map(\.output))")
        let copy = try alerts(rule) { _ = try runProgram("/usr/bin/socat", ["-u", "OPEN:/dev/null", "OPEN:/dev/null"]) }
        XCTAssertEqual(copy.map(\.output), [], "socat copying between files")
    }
}
