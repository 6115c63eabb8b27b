import VigilEvents
@testable import VigilRules
import XCTest

/// The address and port pushdown of network syscalls: which calls of connect, sendto, sendmsg,
/// bind and listen any rule may match, per condition shape; anything it cannot bound exactly
/// bounds nothing.
final class NetworkPushdownTests: XCTestCase {
    private func set(_ conditions: [String], defaults: Bool = false) throws -> RuleSet {
        var yaml = ""
        for (i, condition) in conditions.enumerated() {
            yaml += "- rule: r\(i)\n  desc: d\n  condition: '\(condition.replacingOccurrences(of: "'", with: "''"))'\n  output: o\n  priority: WARNING\n"
        }
        var files: [(file: String, items: [RuleItem])] = []
        if defaults { files.append((RuleFiles.defaultName, try RuleFiles.defaultItems())) }
        files.append(("t.yaml", try YAMLRules.load(yaml, file: "t.yaml")))
        return try RuleSet(files: files)
    }

    private func calls(_ conditions: String...) throws -> [String: NetworkCallFilter] { try set(conditions).pushdown.networkCalls }
    private func nets(_ texts: String...) -> Set<IPNetwork> { Set(texts.compactMap { IPNetwork($0) }) }

    func testLiteralAddress() throws {
        let p = try calls(#"evt.type = connect and fd.sip = "10.1.2.3""#)
        XCTAssertEqual(p["connect"], NetworkCallFilter(networks: nets("10.1.2.3"), ports: nil))
        XCTAssertEqual(p.count, 1, "only connect is asked for")
    }

    func testListOfAddressesIPv4AndIPv6() throws {
        let p = try calls(#"evt.type = connect and fd.rip in ("169.254.169.254", "fd00:ec2::254")"#)
        XCTAssertEqual(p["connect"]?.networks, nets("169.254.169.254", "fd00:ec2::254"))
        XCTAssertTrue(p["connect"]?.networks?.contains { !$0.address.isIPv4 } ?? false)
    }

    func testCIDRNetworks() throws {
        let p = try calls(#"evt.type = connect and fd.snet in ("10.0.0.0/8", "fd00::/8")"#)
        XCTAssertEqual(p["connect"]?.networks, nets("10.0.0.0/8", "fd00::/8"))
        XCTAssertEqual(p["connect"]?.networks?.first { $0.address.isIPv4 }?.prefix, 104, "an IPv4 /8 over the 128-bit form")
    }

    func testPortsListsAndRanges() throws {
        XCTAssertEqual(try calls("evt.type = connect and fd.sport in (3333, 4444, 3334)")["connect"],
                       NetworkCallFilter(networks: nil, ports: PortRanges([3333...3334, 4444...4444])))
        XCTAssertEqual(try calls("evt.type = connect and fd.rport >= 1024")["connect"]?.ports, PortRanges([1024...65535]))
        XCTAssertEqual(try calls("evt.type = connect and fd.rport < 1024 and fd.rport > 21")["connect"]?.ports, PortRanges([22...1023]))
        XCTAssertEqual(try calls("evt.type = bind and fd.lport = 8080")["bind"]?.ports, PortRanges([8080...8080]))
    }

    func testAddressAndPortTogether() throws {
        let p = try calls(#"evt.type = connect and fd.sip = "1.2.3.4" and fd.sport = 80"#)
        XCTAssertEqual(p["connect"], NetworkCallFilter(networks: nets("1.2.3.4"), ports: PortRanges([80...80])))
        // and of two address conditions: the overlap (a /32 inside the /8); none overlapping: no call.
        XCTAssertEqual(try calls(#"evt.type = connect and fd.snet = "10.0.0.0/8" and fd.sip in ("10.9.9.9", "11.0.0.1")"#)["connect"]?.networks,
                       nets("10.9.9.9"))
    }

    func testNegationPushesNothing() throws {
        XCTAssertNil(try calls(#"evt.type = connect and not fd.sip = "1.2.3.4""#)["connect"])
        XCTAssertNil(try calls(#"evt.type = connect and fd.sip != "1.2.3.4""#)["connect"])
        XCTAssertNil(try calls("evt.type = listen and not fd.lport in (80, 443)")["listen"])
        XCTAssertNil(try calls("evt.type = connect and fd.sport != 80")["connect"])
    }

    func testOrWithAnUnrelatedClausePushesNothing() throws {
        XCTAssertNil(try calls(#"evt.type = connect and (fd.sip = "1.2.3.4" or proc.name = nc)"#)["connect"])
        // A branch that cannot be a connect adds nothing.
        let p = try calls(#"(evt.type = connect and fd.sip = "1.2.3.4") or (evt.type = execve and proc.name = nc)"#)
        XCTAssertEqual(p["connect"]?.networks, nets("1.2.3.4"))
        // or of two limited branches: both sets (widened to the product of the unions).
        let q = try calls(#"evt.type = connect and ((fd.sip = "1.2.3.4" and fd.sport = 80) or (fd.sip = "5.6.7.8" and fd.sport = 443))"#)
        XCTAssertEqual(q["connect"], NetworkCallFilter(networks: nets("1.2.3.4", "5.6.7.8"), ports: PortRanges([80...80, 443...443])))
    }

    func testEveryRuleOnTheSyscallMustBeLimited() throws {
        let both = try calls(#"evt.type = connect and fd.sip = "1.2.3.4""#, #"evt.type = connect and fd.snet = "10.0.0.0/8""#)
        XCTAssertEqual(both["connect"]?.networks, nets("1.2.3.4", "10.0.0.0/8"))
        XCTAssertNil(try calls(#"evt.type = connect and fd.sip = "1.2.3.4""#, "evt.type = connect and proc.name = nc")["connect"])
        // A rule with an address but a port-only rule beside it: neither bound holds for every call.
        let mixed = try set([#"evt.type = connect and fd.sip = "1.2.3.4""#, "evt.type = connect and fd.sport = 80"]).pushdown
        XCTAssertNil(mixed.networkCalls["connect"])
        XCTAssertEqual(mixed.unboundedNetworkCalls["connect"], [], "each rule is bounded, by different fields")
        XCTAssertEqual(try set(["evt.type = connect and proc.name = nc"]).pushdown.unboundedNetworkCalls["connect"], ["r0"])
        // A rule on every syscall (no evt.type) wants every connect.
        XCTAssertNil(try calls(#"evt.type = connect and fd.sip = "1.2.3.4""#, "evt.failed = true and proc.name = x")["connect"])
    }

    func testFieldsThatMayNameAnotherEndPushNothing() throws {
        // sendto's fd.sip is the local end on a socket that received first; fd.net is either end.
        XCTAssertNil(try calls(#"evt.type = sendto and fd.sip = "1.2.3.4""#)["sendto"])
        XCTAssertEqual(try calls(#"evt.type = sendto and fd.rip = "1.2.3.4""#)["sendto"]?.networks, nets("1.2.3.4"))
        XCTAssertNil(try calls(#"evt.type = connect and fd.net = "10.0.0.0/8""#)["connect"])
        XCTAssertNil(try calls(#"evt.type = connect and fd.lport = 80"#)["connect"])
        // A comparison on an address field that is not a network test (exists) bounds nothing.
        XCTAssertNil(try calls("evt.type = connect and fd.sip exists")["connect"])
    }

    func testDefaultRulesPushNoConnectFilter() throws {
        // The mining-pool rule matches any connect whose peer a DNS answer named (fd.sip.name):
        // no address set bounds it, so connect stays whole; listen's rule negates its port list.
        let p = try set([], defaults: true).pushdown
        XCTAssertTrue(p.syscalls.contains(try XCTUnwrap(Syscalls.index(named: "connect"))))
        XCTAssertNil(p.networkCalls["connect"])
        XCTAssertNil(p.networkCalls["listen"])
        XCTAssertEqual(p.unboundedNetworkCalls["connect"], ["Connection to a crypto-mining pool"])
        XCTAssertEqual(p.unboundedNetworkCalls["listen"]?.count, 1)
        XCTAssertTrue(p.summary.contains("connect: no address or port set; any call may match 'Connection to a crypto-mining pool'"), "\(p.summary)")
        // The cloud-metadata rule alone is bounded by its list.
        let metadata = try set([], defaults: true).rules.filter { $0.rule.name.hasPrefix("Connection to the cloud metadata") }
        XCTAssertEqual(metadata.count, 1)
        let row = try XCTUnwrap(Syscalls.index(named: "connect"))
        XCTAssertEqual(NetworkPushdown.filter(row: row, conditions: metadata.map(\.condition))?.networks,
                       nets("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
    }

    func testSummaryNamesTheSets() throws {
        let lines = try set([#"evt.type = connect and fd.sip = "1.2.3.4" and fd.sport in (80, 81)"#]).pushdown.summary
        XCTAssertTrue(lines.contains { $0.hasPrefix("connect: rules match only addresses 1.2.3.4/32; ports 80-81") }, "\(lines)")
    }
}
