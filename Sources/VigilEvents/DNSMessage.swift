/// A DNS message (RFC 1035) as a process sent or received it: the header, the questions and the
/// answers' addresses and aliases. Parsed from the bytes a syscall captured on a socket to or from
/// port 53 (`DNSMessage(bytes:)`), bounded and safe on hostile input: compression pointers may only
/// point backwards, names are at most 255 bytes, counts are capped.
public struct DNSMessage: Sendable, Equatable {
    /// One question: the name asked for and its type.
    public struct Question: Sendable, Equatable {
        public var name: String
        public var type: UInt16
    }

    /// One answer record of a type Vigil reads (A, AAAA, CNAME); others are counted, not kept.
    public struct Answer: Sendable, Equatable {
        public var name: String
        public var type: UInt16
        public var ttl: UInt32
        /// An A or AAAA record's address.
        public var address: IPAddress?
        /// A CNAME record's target.
        public var alias: String?
    }

    /// The transaction id.
    public var id: UInt16
    /// A response (QR set), not a query.
    public var isResponse: Bool
    /// The response code (0 NOERROR, 3 NXDOMAIN, ...).
    public var rcode: UInt8
    public var questions: [Question]
    public var answers: [Answer]
    /// Set by enrichment (`DNSBaseline`, the daemon with a rule reading dns.name.new): whether
    /// `name` is a name the container's image had not looked up before (after its learning
    /// window); nil when no baseline judged it (a host process, an image not known or over the
    /// bound, no rule asking).
    public var isNewName: Bool? = nil

    /// The first question's name as bytes (`name`'s): what dns.name reads.
    public private(set) var nameBytes: ByteString = ""

    /// Questions and answers read at most (a message claiming more is read up to these).
    static let maxQuestions = 4, maxAnswers = 64

    /// Parses a message; `stream`: it came over TCP, where a 2-byte length precedes it. Nil when the
    /// bytes are not a well-formed message with at least one question.
    public init?(bytes: some Collection<UInt8>, stream: Bool = false) {
        guard let message = bytes.withContiguousStorageIfAvailable({ DNSMessage(parsing: $0, stream: stream) })
            ?? Array(bytes).withUnsafeBufferPointer({ DNSMessage(parsing: $0, stream: stream) }) else { return nil }
        self = message
    }

    /// Parses the message in `bytes` in place (no copy: every DNS event is parsed).
    private init?(parsing bytes: UnsafeBufferPointer<UInt8>, stream: Bool) {
        var b = bytes
        if stream {
            guard b.count >= 2 else { return nil }
            let length = Int(b[0]) << 8 | Int(b[1])
            b = UnsafeBufferPointer(rebasing: b[2..<min(b.count, 2 + length)])
        }
        guard b.count >= 12 else { return nil }
        func u16(_ i: Int) -> UInt16 { UInt16(b[i]) << 8 | UInt16(b[i + 1]) }
        id = u16(0)
        let flags = u16(2)
        isResponse = flags & 0x8000 != 0
        guard (flags >> 11) & 0xf == 0 else { return nil } // opcode QUERY only
        rcode = UInt8(flags & 0xf)
        let qdcount = Int(u16(4)), ancount = Int(u16(6))
        guard qdcount >= 1 else { return nil }
        var offset = 12
        questions = []
        for index in 0..<min(qdcount, Self.maxQuestions) {
            guard let name = Self.nameBytes(b, &offset), offset + 4 <= b.count else { return nil }
            if index == 0 { nameBytes = ByteString(name) }
            questions.append(Question(name: String(decoding: name, as: UTF8.self), type: u16(offset)))
            offset += 4
        }
        guard qdcount <= Self.maxQuestions else { answers = []; return }
        answers = []
        for _ in 0..<min(ancount, Self.maxAnswers) {
            guard let name = Self.name(b, &offset), offset + 10 <= b.count else { break }
            let type = u16(offset), length = Int(u16(offset + 8))
            let ttl = UInt32(u16(offset + 4)) << 16 | UInt32(u16(offset + 6))
            let data = offset + 10
            guard data + length <= b.count else { break }
            var answer = Answer(name: name, type: type, ttl: ttl)
            switch (type, length) {
            case (1, 4), (28, 16): answer.address = IPAddress(bytes: b[data..<data + length])
            case (5, _):
                var at = data
                answer.alias = Self.name(b, &at)
            default: break
            }
            answers.append(answer)
            offset = data + length
        }
    }

    /// The name at `offset` (advanced past it) as text; see `nameBytes(_:_:)`.
    static func name(_ b: UnsafeBufferPointer<UInt8>, _ offset: inout Int) -> String? {
        nameBytes(b, &offset).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The name at `offset` (advanced past it), lowercased, without the final dot; nil when
    /// malformed (a label past the end, a pointer that does not point backwards, over 255 bytes).
    static func nameBytes(_ b: UnsafeBufferPointer<UInt8>, _ offset: inout Int) -> [UInt8]? {
        var text: [UInt8] = []  // the labels, lowercased, joined by dots
        text.reserveCapacity(64)
        var at = offset
        var total = 0
        var jumped = false
        while true {
            guard at < b.count else { return nil }
            let length = Int(b[at])
            if length & 0xc0 == 0xc0 {
                guard at + 1 < b.count else { return nil }
                let target = (length & 0x3f) << 8 | Int(b[at + 1])
                guard target < at else { return nil } // backwards only: no loops
                if !jumped { offset = at + 2 }
                jumped = true
                at = target
                continue
            }
            guard length & 0xc0 == 0 else { return nil }
            at += 1
            if length == 0 { break }
            total += length + 1
            guard total <= 255, at + length <= b.count else { return nil }
            if !text.isEmpty { text.append(UInt8(ascii: ".")) }
            for byte in b[at..<at + length] { text.append(byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte) }
            at += length
        }
        if !jumped { offset = at }
        return text
    }

    /// The first question's name.
    public var name: String { questions.first?.name ?? "" }

    /// The addresses of the A and AAAA answers.
    public var addresses: [IPAddress] { answers.compactMap(\.address) }

    /// A record type's name (A, AAAA, CNAME, ...), or its number.
    public static func typeName(_ type: UInt16) -> String {
        switch type {
        case 1: "A"
        case 2: "NS"
        case 5: "CNAME"
        case 6: "SOA"
        case 12: "PTR"
        case 15: "MX"
        case 16: "TXT"
        case 28: "AAAA"
        case 33: "SRV"
        case 64: "SVCB"
        case 65: "HTTPS"
        case 255: "ANY"
        default: String(type)
        }
    }

    /// A response code's name (NOERROR, NXDOMAIN, ...), or its number.
    public static func rcodeName(_ rcode: UInt8) -> String {
        switch rcode {
        case 0: "NOERROR"
        case 1: "FORMERR"
        case 2: "SERVFAIL"
        case 3: "NXDOMAIN"
        case 4: "NOTIMP"
        case 5: "REFUSED"
        default: String(rcode)
        }
    }
}
