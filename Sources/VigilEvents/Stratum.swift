/// The crypto-mining pool protocol (stratum): line-delimited JSON-RPC over TCP. A miner's first
/// message is a request to the pool: `{"id":1,"method":"mining.subscribe","params":[...]}`
/// (Bitcoin's stratum v1 and most others), `mining.authorize`, or XMRig's (Monero's)
/// `{"id":1,"jsonrpc":"2.0","method":"login","params":{"login":...,"pass":...,"agent":...}}`.
///
/// Read from the bytes a client wrote on a TCP socket (the field `net.stratum.method`), without a
/// JSON parser: the payload must begin with a JSON object (after blanks), hold no line break before
/// the method, and name a stratum method; a message cut by the capture's bound is still read up to
/// where it was cut. An HTTP request carrying JSON-RPC (`POST / HTTP/1.1 ... {"method":...}`) does
/// not begin with `{`, and JSON-RPC methods of other protocols (`eth_blockNumber`) are no stratum.
public enum Stratum {
    /// The method of a stratum request at the start of `bytes`, nil when they hold none:
    /// `mining.*` (mining.subscribe, mining.authorize, mining.submit, mining.configure, ...), or
    /// `login` whose params have a `pass` or an `agent` (XMRig and the Monero pools).
    public static func method(_ bytes: some Collection<UInt8>) -> String? {
        var b = bytes.prefix(maxBytes).makeIterator()
        var line: [UInt8] = []
        line.reserveCapacity(Swift.min(bytes.count, maxBytes))
        while let c = b.next(), c != UInt8(ascii: "\n") { line.append(c) }
        guard let start = line.firstIndex(where: { !isBlank($0) }), line[start] == UInt8(ascii: "{") else { return nil }
        guard let method = stringValue(of: "method", in: line) else { return nil }
        if method.hasPrefix("mining."), method.count > 7 { return method }
        if method == "login", key("pass", in: line) || key("agent", in: line) { return method }
        return nil
    }

    /// Bytes read at most (the first line of a miner's login fits in a few hundred).
    static let maxBytes = 4096

    private static func isBlank(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0d }

    /// The offset just after `"name"` followed by blanks and a colon, nil when no such key.
    private static func valueStart(of name: String, in line: [UInt8]) -> Int? {
        let quoted = Array("\"\(name)\"".utf8)
        guard line.count >= quoted.count else { return nil }
        var i = 0
        while i + quoted.count <= line.count {
            if line[i] == quoted[0], line[i..<i + quoted.count].elementsEqual(quoted) {
                var j = i + quoted.count
                while j < line.count, isBlank(line[j]) { j += 1 }
                if j < line.count, line[j] == UInt8(ascii: ":") {
                    j += 1
                    while j < line.count, isBlank(line[j]) { j += 1 }
                    return j
                }
            }
            i += 1
        }
        return nil
    }

    /// Whether the line has the key `name`.
    private static func key(_ name: String, in line: [UInt8]) -> Bool { valueStart(of: name, in: line) != nil }

    /// The string value of the key `name` (plain characters only: a method name has no escapes),
    /// nil when the key is missing, its value is no string, or the string is unterminated.
    private static func stringValue(of name: String, in line: [UInt8]) -> String? {
        guard var i = valueStart(of: name, in: line), i < line.count, line[i] == UInt8(ascii: "\"") else { return nil }
        i += 1
        let start = i
        while i < line.count, line[i] != UInt8(ascii: "\"") {
            let c = line[i]
            guard c >= 0x20, c < 0x7f, c != UInt8(ascii: "\\") else { return nil }
            i += 1
        }
        guard i < line.count, i > start, i - start <= 64 else { return nil }
        return String(decoding: line[start..<i], as: UTF8.self)
    }
}
