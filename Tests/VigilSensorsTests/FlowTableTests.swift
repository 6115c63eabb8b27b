import CVigilABI
import VigilEvents
import VigilSensors
import XCTest

/// `FlowTable` (vigil flows) on decoded connection records: which side counts, names, counters.
final class FlowTableTests: XCTestCase {
    private var decoder = EventDecoder(bootToEpochNs: 0)

    /// A conn record of `phase` from local a.b.c.d:lport to remote w.x.y.z:rport.
    private func event(_ phase: vigil_conn_phase, local: [UInt8], _ lport: UInt16, remote: [UInt8], _ rport: UInt16,
                       passive: Bool = false, state: UInt8 = 1, sent: UInt64 = 0, received: UInt64 = 0, time: UInt64 = 1) throws -> Event {
        var e = vigil_conn_event()
        e.hdr.kind = UInt32(VIGIL_EVENT_CONN.rawValue)
        e.hdr.size = UInt32(MemoryLayout<vigil_conn_event>.size)
        e.hdr.ts_ns = time
        e.hdr.pid = 7
        withUnsafeMutableBytes(of: &e.hdr.comm) { for (i, b) in "curl".utf8.enumerated() { $0[i] = b } }
        e.tuple.family = 2; e.tuple.type = 1; e.tuple.protocol = 6; e.tuple.state = state
        e.tuple.lport = lport; e.tuple.rport = rport
        withUnsafeMutableBytes(of: &e.tuple.laddr) { for (i, b) in local.enumerated() { $0[i] = b } }
        withUnsafeMutableBytes(of: &e.tuple.raddr) { for (i, b) in remote.enumerated() { $0[i] = b } }
        e.phase = UInt8(phase.rawValue)
        e.flags = passive ? UInt8(VIGIL_CONN_PASSIVE.rawValue) : 0
        e.bytes_sent = sent; e.bytes_received = received
        return try XCTUnwrap(withUnsafeBytes(of: e) { decoder.decode($0) })
    }

    func testOutgoingConnectionsCountByDestinationNamedByItsContainer() throws {
        var flows = FlowTable()
        let web: [UInt8] = [172, 18, 0, 2]
        flows.addressNames = [IPAddress(bytes: web)!: "web"]
        let host: [UInt8] = [172, 18, 0, 1]
        flows.add(try event(VIGIL_CONN_CONNECT, local: host, 40000, remote: web, 80, time: 10))
        flows.add(try event(VIGIL_CONN_CLOSE, local: host, 40000, remote: web, 80, sent: 100, received: 2000, time: 20))
        flows.add(try event(VIGIL_CONN_RETRANSMIT, local: host, 40000, remote: web, 80, time: 15))
        flows.add(try event(VIGIL_CONN_CONNECT, local: host, 40001, remote: web, 80, time: 30))
        flows.add(try event(VIGIL_CONN_CLOSE, local: host, 40002, remote: web, 81, state: 2, time: 40)) // SYN_SENT: refused
        let key = FlowTable.Key(direction: .out, source: "host", process: "curl", destination: "web:80")
        XCTAssertEqual(flows.flows[key], FlowTable.Flow(connections: 2, open: 1, failed: 0, bytesSent: 100, bytesReceived: 2000,
                                                        retransmits: 1, lastSeenNs: 30))
        XCTAssertEqual(flows.flows[FlowTable.Key(direction: .out, source: "host", process: "curl", destination: "web:81")]?.failed, 1)
        let table = flows.table()
        XCTAssertTrue(table.hasPrefix("DIR"), table)
        XCTAssertTrue(table.contains("web:80"), table)
    }

    func testAcceptedConnectionsCountOnlyFromPeersOffThisHost() throws {
        var flows = FlowTable()
        let local: [UInt8] = [10, 0, 0, 5], peer: [UInt8] = [203, 0, 113, 9], loopback: [UInt8] = [127, 0, 0, 1]
        flows.add(try event(VIGIL_CONN_ACCEPT, local: local, 443, remote: peer, 50000, passive: true))
        flows.add(try event(VIGIL_CONN_CLOSE, local: local, 443, remote: peer, 50000, passive: true, sent: 5, received: 7))
        flows.add(try event(VIGIL_CONN_ACCEPT, local: loopback, 443, remote: loopback, 50001, passive: true))
        XCTAssertEqual(flows.flows.count, 1, "the loopback one counts on its connecting side: \(flows.flows)")
        let key = FlowTable.Key(direction: .in, source: "203.0.113.9", process: "curl", destination: "host:443")
        XCTAssertEqual(flows.flows[key]?.connections, 1)
        XCTAssertEqual(flows.flows[key]?.open, 0)
        XCTAssertEqual(flows.flows[key]?.bytesSent, 5)
        XCTAssertEqual(flows.flows[key]?.bytesReceived, 7)
    }
}
