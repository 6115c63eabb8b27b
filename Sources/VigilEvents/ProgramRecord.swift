import Synchronization

/// The fields of a user-supplied program bundle's event struct, as its object's BTF lays them out
/// (docs/bundles.md): what a record of the bundle's ring decodes into. Made once per bundle load
/// (VigilSensors' `ProgramBundle`), shared by every event of the bundle.
public final class ProgramSchema: Sendable {
    /// How one member's bytes become a value.
    public enum Decoding: Sendable, Equatable {
        /// An integer of `size` bytes (1, 2, 4 or 8), little-endian, signed or not.
        case integer(size: Int, signed: Bool)
        /// A char array of `size` bytes: a string up to the first NUL.
        case string(size: Int)
        /// A fixed array of `count` integers of `size` bytes each: a list (as strings of the numbers).
        case integers(count: Int, size: Int, signed: Bool)
    }
    /// One member of the event struct.
    public struct Field: Sendable, Equatable {
        /// The member's name (the FIELD of `prog.BUNDLE.FIELD`).
        public let name: String
        /// Its byte offset in the record.
        public let offset: Int
        /// How it decodes.
        public let decoding: Decoding
        /// The rule language's type for it.
        public var type: FieldType {
            switch decoding {
            case .integer(_, let signed): signed ? .int : .uint
            case .string: .string
            case .integers: .strings
            }
        }
        /// The bytes it takes in the record.
        public var size: Int {
            switch decoding {
            case .integer(let size, _), .string(let size): size
            case .integers(let count, let size, _): count * size
            }
        }

        /// A field.
        public init(name: String, offset: Int, decoding: Decoding) {
            self.name = name; self.offset = offset; self.decoding = decoding
        }
    }

    /// The bundle's name: evt.type of its events, the BUNDLE of `prog.BUNDLE.FIELD`.
    public let name: String
    /// The event struct's name (for messages).
    public let structName: String
    /// The struct's size: the least a record has.
    public let size: Int
    /// The members, in declaration order.
    public let fields: [Field]
    /// The member whose value is the pid that made the record (the manifest's `pid_field`), by index in `fields`.
    public let pidField: Int?
    /// `fields` by name.
    private let indexByName: [String: Int]

    /// A schema; `pidField` names the member holding the pid (nil: the record's pid is unknown).
    public init(name: String, structName: String, size: Int, fields: [Field], pidField: String?) {
        self.name = name; self.structName = structName; self.size = size; self.fields = fields
        let index = Dictionary(fields.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { a, _ in a })
        indexByName = index
        self.pidField = pidField.flatMap { index[$0] }
    }

    /// The index of member `name` in `fields`.
    public func index(of name: String) -> Int? { indexByName[name] }

    /// The values of a record's members, nil when the record is shorter than the struct.
    public func decode(_ record: UnsafeRawBufferPointer) -> [FieldValue]? {
        guard record.count >= size else { return nil }
        return fields.map { field in
            switch field.decoding {
            case .integer(let size, let signed):
                return Self.integer(record, field.offset, size, signed)
            case .string(let size):
                let bytes = UnsafeRawBufferPointer(rebasing: record[field.offset..<(field.offset + size)])
                return .string(ByteString(bytes.prefix { $0 != 0 }))
            case .integers(let count, let size, let signed):
                return .strings((0..<count).map { i in
                    switch Self.integer(record, field.offset + i * size, size, signed) {
                    case .int(let v): ByteString(String(v))
                    case .uint(let v): ByteString(String(v))
                    default: ByteString("")
                    }
                })
            }
        }
    }

    private static func integer(_ record: UnsafeRawBufferPointer, _ offset: Int, _ size: Int, _ signed: Bool) -> FieldValue {
        var raw: UInt64 = 0
        for i in 0..<size { raw |= UInt64(record[offset + i]) << (8 * UInt64(i)) }
        guard signed else { return .uint(raw) }
        let shift = UInt64(64 - 8 * size)
        return .int(Int64(bitPattern: raw << shift) >> Int64(shift))
    }

    // MARK: The loaded bundles' schemas

    private static let loaded = Mutex<[String: ProgramSchema]>([:])

    /// Makes `schema`'s fields known to conditions and outputs (`prog.NAME.FIELD`) while its
    /// bundle is loaded; replaces a schema of the same name.
    public static func register(_ schema: ProgramSchema) { loaded.withLock { $0[schema.name] = schema } }

    /// Forgets the schema of bundle `name` (its bundle was unloaded).
    public static func unregister(_ name: String) { _ = loaded.withLock { $0.removeValue(forKey: name) } }

    /// The schema of loaded bundle `name`.
    public static func registered(_ name: String) -> ProgramSchema? { loaded.withLock { $0[name] } }

    /// The names of the loaded bundles, sorted.
    public static var registeredNames: [String] { loaded.withLock { $0.keys.sorted() } }
}

extension Payload {
    /// A record of a user-supplied program bundle, decoded by its schema (kind `program`).
    public struct ProgramRecord: Sendable {
        /// The bundle's layout of the record.
        public let schema: ProgramSchema
        /// The members' values, in `schema.fields` order.
        public var values: [FieldValue]

        /// A record.
        public init(schema: ProgramSchema, values: [FieldValue]) {
            self.schema = schema
            self.values = values
        }

        /// The value of member `name`.
        public func value(_ name: String) -> FieldValue? { schema.index(of: name).map { values[$0] } }
    }
}

/// The fields of program bundle events: `prog.BUNDLE.FIELD` for every member of a loaded
/// bundle's event struct (docs/bundles.md), resolved while the bundle is loaded.
public enum ProgramFields {
    /// The prefix of every bundle field.
    public static let prefix = "prog."

    /// The catalogue's fields of program events (the members are `dotted`).
    static let fields: [FieldDefinition] = [
        .init("prog.name", .string, [.program], "The program bundle whose record this is (also evt.type); its struct's members are the fields prog.BUNDLE.MEMBER (docs/bundles.md).") { e, _ in
            record(e).map { Fields.str($0.schema.name) }
        },
    ]

    static func record(_ e: Event) -> Payload.ProgramRecord? {
        if e.kind == .program, case .program(let r) = e.payload { return r }
        return nil
    }

    /// The definition of `prog.BUNDLE.FIELD` when bundle BUNDLE is loaded and has member FIELD.
    public static func dotted(_ name: String) -> FieldDefinition? {
        guard name.hasPrefix(prefix) else { return nil }
        let rest = name.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: ".") else { return nil }
        let bundle = String(rest[..<dot]), member = String(rest[rest.index(after: dot)...])
        guard let schema = ProgramSchema.registered(bundle), let index = schema.index(of: member) else { return nil }
        let field = schema.fields[index]
        return FieldDefinition(name, field.type, [.program], "Member \(member) of bundle \(bundle)'s struct \(schema.structName).") { e, _ in
            guard let r = record(e), r.schema.name == bundle, let i = r.schema.index(of: member) else { return nil }
            return r.values[i]
        }
    }

    /// Appends `,"prog.BUNDLE.FIELD":VALUE` for every member of a program event's record (JSON).
    static func appendJSON(_ e: Event, to out: inout ByteBuffer) {
        guard let r = record(e) else { return }
        for (field, value) in zip(r.schema.fields, r.values) {
            out.append(0x2c)
            out.appendJSON(prefix + r.schema.name + "." + field.name)
            out.append(0x3a)
            out.appendJSON(value)
        }
    }

    /// The members of a program event as `NAME=VALUE`, for the table form.
    static func summary(_ r: Payload.ProgramRecord) -> String {
        zip(r.schema.fields, r.values).map { field, value in
            let text: String
            switch value {
            case .string(let s): text = s.escapedForTerminal
            case .uint(let v): text = String(v)
            case .int(let v): text = String(v)
            case .bool(let v): text = String(v)
            case .strings(let list): text = "[" + list.map(\.escapedForTerminal).joined(separator: ",") + "]"
            case .uints(let list): text = "[" + list.map(String.init).joined(separator: ",") + "]"
            }
            return "\(field.name)=\(text)"
        }.joined(separator: " ")
    }
}
