import VigilEvents
import XCTest

/// The stratum reader on miners' first messages and on look-alikes (HTTP carrying JSON-RPC, other
/// JSON-RPC methods, a login without a miner's params, text, cut and broken lines).
final class StratumTests: XCTestCase {
    private func method(_ text: String) -> String? { Stratum.method(Array(text.utf8)) }

    func testMinersFirstMessages() {
        XCTAssertEqual(method(#"{"id":1,"method":"mining.subscribe","params":["cgminer/4.10.0"]}"# + "\n"), "mining.subscribe")
        XCTAssertEqual(method(#"{"params": ["worker", "x"], "id": 2, "method" : "mining.authorize"}"# + "\n"), "mining.authorize")
        XCTAssertEqual(method(#"  {"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44AFFq5kSiGBoZ","pass":"x","agent":"XMRig/6.21.0 (Linux x86_64) libuv/1.44.2 gcc/11.2.0"}}"# + "\n"), "login")
        // Cut by the capture's bound after the method: still read.
        XCTAssertEqual(method(#"{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":"44AFFq5kSiGBoZ","pass":"x","ag"#), "login")
    }

    func testLookAlikesAreNoStratum() {
        XCTAssertNil(method("POST / HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\n\r\n" + #"{"jsonrpc":"2.0","method":"eth_blockNumber","id":1}"#))
        XCTAssertNil(method(#"{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":1}"# + "\n"))
        XCTAssertNil(method(#"{"jsonrpc":"2.0","method":"login","params":{"user":"alice"},"id":1}"#), "a login with no pass or agent")
        XCTAssertNil(method(#"{"id":1,"method":"mining."}"#), "no method after the prefix")
        XCTAssertNil(method(#"{"id":1,"method":"mining.subscr"#), "the method itself cut")
        XCTAssertNil(method("hello\n" + #"{"id":1,"method":"mining.subscribe"}"#), "a stratum line after another line")
        XCTAssertNil(method(#"{"id":1,"method":1}"#))
        XCTAssertNil(method(#"{"id":1,"method":"mining.\u0073ubscribe"}"#), "escapes are not read")
        XCTAssertNil(method(""))
        XCTAssertNil(Stratum.method([0xff, 0x7b, 0x00]))
    }
}
