import CVigilABI
import VigilBPF
import VigilRules

/// What the file sensor's path maps hold (open_paths, open_basenames, kill_comms), kept by
/// `Sensors` so that a new pushdown writes only what changed and deletes what is stale.
struct InstalledOpenPaths {
    struct TrieKey: Hashable { var path: [UInt8]; var exact: Bool }
    struct CommKey: Hashable { var rule: UInt32; var comm: String }

    var trie: [TrieKey: vigil_path_rule] = [:]
    var basenames: [[UInt8]: vigil_path_rule] = [:]
    var killComms: Set<CommKey> = []
    /// The switches of the filter config (enum vigil_filter_flags) these maps need.
    var flags: UInt32 = 0
    /// Classes kept whatever the path.
    var anyPath: OpenClasses = []
}

/// The file sensor's path maps (bpf/file.bpf.c).
struct OpenPathMaps {
    let trie: TypedMap<vigil_path_key, vigil_path_rule>
    let basenames: TypedMap<vigil_basename_key, vigil_path_rule>
    let killComms: TypedMap<vigil_kill_comm_key, UInt8>

    init(_ object: BPFObject) throws {
        trie = try TypedMap(object.map(named: "open_paths"))
        basenames = try TypedMap(object.map(named: "open_basenames"))
        killComms = try TypedMap(object.map(named: "kill_comms"))
    }

    /// What the maps must hold for `pushdown` (nil: nothing, every open passes).
    static func contents(of pushdown: OpenPathPushdown?) throws -> InstalledOpenPaths {
        var result = InstalledOpenPaths()
        guard let pushdown else { return result }
        func rule(_ entry: OpenPathEntry) -> vigil_path_rule {
            let commands = entry.killRule.map { pushdown.killRules[$0].commands } ?? .any
            let mode: vigil_kill_comms = switch commands {
            case .any: VIGIL_KILL_ANY_COMM
            case .only: VIGIL_KILL_COMMS_ONLY
            case .except: VIGIL_KILL_COMMS_EXCEPT
            }
            return vigil_path_rule(pass: entry.pass.rawValue, kill: entry.kill.rawValue, kill_comms: UInt8(mode.rawValue), _pad: 0,
                                   kill_rule: UInt32(entry.killRule ?? 0))
        }
        for entry in try pushdown.trieEntries() {
            result.trie[.init(path: entry.path, exact: entry.exact)] = rule(entry.entry)
        }
        for (name, entry) in pushdown.basenames { result.basenames[name] = rule(entry) }
        for (index, killRule) in pushdown.killRules.enumerated() {
            switch killRule.commands {
            case .any: break
            case .only(let names), .except(let names):
                for name in names { result.killComms.insert(.init(rule: UInt32(index), comm: name)) }
            }
        }
        if pushdown.filtering { result.flags |= UInt32(VIGIL_FILTER_OPEN_PATHS.rawValue) }
        if !pushdown.killRules.isEmpty { result.flags |= UInt32(VIGIL_FILTER_OPEN_KILL.rawValue) }
        if !result.basenames.isEmpty { result.flags |= UInt32(VIGIL_FILTER_OPEN_BASENAMES.rawValue) }
        result.anyPath = pushdown.anyPath
        return result
    }

    /// Writes the entries of `pushdown` that differ from `installed`, then deletes the stale
    /// ones; `installed` becomes what the maps hold. (The caller sets the switches.)
    func install(_ pushdown: OpenPathPushdown?, replacing installed: inout InstalledOpenPaths) throws {
        let wanted = try Self.contents(of: pushdown)
        for (key, value) in wanted.trie where installed.trie[key].map({ !Self.same($0, value) }) ?? true {
            try trie.update(Self.trieKey(key), value)
        }
        for (name, value) in wanted.basenames where installed.basenames[name].map({ !Self.same($0, value) }) ?? true {
            try basenames.update(Self.basenameKey(name), value)
        }
        for key in wanted.killComms.subtracting(installed.killComms) { try killComms.update(Self.commKey(key), 1) }
        for key in installed.trie.keys where wanted.trie[key] == nil { try trie.delete(Self.trieKey(key)) }
        for name in installed.basenames.keys where wanted.basenames[name] == nil { try basenames.delete(Self.basenameKey(name)) }
        for key in installed.killComms.subtracting(wanted.killComms) { try killComms.delete(Self.commKey(key)) }
        installed = wanted
    }

    private static func same(_ a: vigil_path_rule, _ b: vigil_path_rule) -> Bool {
        a.pass == b.pass && a.kill == b.kill && a.kill_comms == b.kill_comms && a.kill_rule == b.kill_rule
    }

    /// An exact path is stored with its NUL (prefixlen counts it), a prefix without.
    static func trieKey(_ key: InstalledOpenPaths.TrieKey) -> vigil_path_key {
        var k = vigil_path_key()
        let bytes = key.path.prefix(Int(VIGIL_PUSHDOWN_PATH_MAX) - 1)
        withUnsafeMutableBytes(of: &k.path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        k.prefixlen = UInt32(bytes.count + (key.exact ? 1 : 0)) * 8
        return k
    }

    static func basenameKey(_ name: [UInt8]) -> vigil_basename_key {
        var k = vigil_basename_key()
        withUnsafeMutableBytes(of: &k.name) { raw in
            for (i, b) in name.prefix(Int(VIGIL_PUSHDOWN_BASENAME_MAX) - 1).enumerated() { raw[i] = b }
        }
        return k
    }

    static func commKey(_ key: InstalledOpenPaths.CommKey) -> vigil_kill_comm_key {
        var k = vigil_kill_comm_key()
        k.rule = key.rule
        withUnsafeMutableBytes(of: &k.comm) { raw in
            for (i, b) in key.comm.utf8.prefix(15).enumerated() { raw[i] = b }
        }
        return k
    }
}
