import Foundation
import VigilEvents

/// The names each container image looks up (dns.name.new): per image (`container.image`, as the
/// runtime named it), every name its containers look up during a learning window is its
/// baseline; after the window a name not in it is new (`DNSMessage.isNewName`) and joins it, so
/// it is new once.
///
/// A lookup is a DNS message on a socket whose remote port is 53 and local port is not (the
/// resolver's end: a query sent or an answer received; a DNS server's own traffic is not its
/// lookups). Host processes are not baselined (their names have no image to belong to), nor are
/// containers whose image is not known.
///
/// The window is time Vigil watched the image: it starts at the image's first lookup and runs
/// while the daemon runs (a restart carries on where it stopped, the time the daemon was down
/// does not count; a window that ended stays ended). Bounded: at most `maxImages` images and
/// `maxNames` names per image. A lookup of an image past the bound is not judged (no value) and
/// counted; a name past an image's bound is not kept, counted, and (after the window) new each
/// time it is looked up.
///
/// The state is saved one file per image (`takeChanged`, `load`: the daemon writes them under
/// STATE_DIR/dns-baseline atomically). Driven by one thread (the event pipeline).
public final class DNSBaseline {
    /// The window and the bounds (`dns_baseline:` in vigil.yaml).
    public struct Settings: Sendable, Equatable {
        /// How long each image learns, nanoseconds of Vigil running since its first lookup
        /// (`learning_seconds`, default 600).
        public var learningNs: UInt64 = 600_000_000_000
        /// Names kept per image (`max_names`).
        public var maxNames = 4096
        /// Images kept (`max_images`).
        public var maxImages = 1024

        /// The defaults.
        public init() {}
    }

    /// What the baselines hold and did (the daemon's status `dns_baseline`, its metrics).
    public struct Status: Sendable, Equatable, Encodable {
        /// The window, seconds.
        public var learningSeconds: Double = 0
        /// The bounds.
        public var maxNames = 0, maxImages = 0
        /// Whether a rule reads dns.name.new, so lookups are judged now.
        public var active = false
        /// Images baselined, of them still learning, names kept over all.
        public var images = 0, imagesLearning = 0, names = 0
        /// Lookups judged, and those that were new (after the window).
        public var lookups: UInt64 = 0, newNames: UInt64 = 0
        /// Names not kept: their image already held `maxNames`.
        public var namesNotKept: UInt64 = 0
        /// Lookups not judged: their image was not baselined and `maxImages` already were.
        public var lookupsOverImageBound: UInt64 = 0
        /// Lookups not judged: a container whose image the runtime did not name.
        public var lookupsWithoutImage: UInt64 = 0
        /// Saved files that could not be read at start (each set aside, its image learned anew).
        public var unreadableFiles: UInt64 = 0
        /// Saves that failed.
        public var saveErrors: UInt64 = 0

        /// Nothing yet.
        public init() {}
    }

    /// One image's baseline.
    private struct Image {
        var names: Set<String>
        /// Window time watched before `since`.
        var watchedNs: UInt64
        /// Boot time from which the window runs on in this run.
        var since: UInt64
        /// The window ended (sticky: a larger window later does not reopen it).
        var ended: Bool
        var namesNotKept: UInt64
        /// Changed since it was last saved.
        var changed: Bool

        func watched(at now: UInt64) -> UInt64 { watchedNs + (now > since ? now - since : 0) }

        /// Ends the window when its time is up; whether it is still open.
        mutating func learning(at now: UInt64, window: UInt64) -> Bool {
            guard !ended else { return false }
            if watched(at: now) < window { return true }
            ended = true
            changed = true
            return false
        }
    }

    /// One image's saved file.
    struct File: Codable {
        var version = 1
        var image: String
        var learning: Bool
        var watchedNs: UInt64
        var namesNotKept: UInt64
        var names: [String]
    }

    /// The window and bounds.
    public let settings: Settings
    private var images: [String: Image] = [:]
    /// The counters (images, learning and names are filled in by `status`).
    private var counters = Status()
    /// Whether an image changed since `takeChanged` last ran (a name learned or not kept, a
    /// window ended, a failed save).
    public private(set) var hasChanges = false
    /// Called once, when the first image over the bound is refused.
    public var onImageBoundReached: ((String) -> Void)?

    /// An empty baseline.
    public init(settings: Settings) {
        self.settings = settings
    }

    /// Judges the DNS message of `event` (`event.dns`): sets its `isNewName` for a lookup of a
    /// container whose image is baselined (or is baselined from now on), and learns the name.
    public func apply(_ event: inout Event) {
        guard var message = event.dns, event.container.isContainer, let socket = event.fd?.socket,
              socket.remote?.port == 53, socket.local?.port != 53 else { return }
        let name = message.name
        guard !name.isEmpty else { return }
        let image = event.container.image
        guard !image.isEmpty else {
            counters.lookupsWithoutImage += 1
            return
        }
        let now = event.bootTimeNs
        if images[image] == nil, images.count >= settings.maxImages {
            if counters.lookupsOverImageBound == 0 { onImageBoundReached?(image) }
            counters.lookupsOverImageBound += 1
            return
        }
        counters.lookups += 1
        // A new image's window starts now.
        let fresh = Image(names: [], watchedNs: 0, since: now, ended: false, namesNotKept: 0, changed: true)
        let isNew = Self.judge(name, in: &images[image, default: fresh], at: now, settings: settings, counters: &counters)
        if images[image]?.changed == true { hasChanges = true }
        message.isNewName = isNew
        event.dns = message
    }

    /// Whether `name` is new to `image` at `now` (after its window and not in it), learning it.
    private static func judge(_ name: String, in image: inout Image, at now: UInt64, settings: Settings, counters: inout Status) -> Bool {
        let learning = image.learning(at: now, window: settings.learningNs)
        if image.names.contains(name) { return false }
        if image.names.count < settings.maxNames {
            image.names.insert(name)
        } else {
            image.namesNotKept += 1
            counters.namesNotKept += 1
        }
        image.changed = true
        guard !learning else { return false }
        counters.newNames += 1
        return true
    }

    /// The files of the images that changed since the last call (with `learning`, of every image
    /// still learning too: its window's time so far), as of boot time `now`: the file name (safe
    /// in one directory, one per image) and the JSON.
    public func takeChanged(at now: UInt64, learning: Bool = false) -> [(file: String, data: Data)] {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys]
        var out: [(file: String, data: Data)] = []
        hasChanges = false
        for key in Array(images.keys) {
            guard var image = images[key] else { continue }
            let open = image.learning(at: now, window: settings.learningNs)
            guard image.changed || (learning && open) else { continue }
            let file = File(image: key, learning: open, watchedNs: min(image.watched(at: now), settings.learningNs),
                            namesNotKept: image.namesNotKept, names: image.names.sorted())
            guard let data = try? encoder.encode(file) else { continue }
            image.changed = false
            images[key] = image
            out.append((Self.fileName(key), data))
        }
        return out
    }

    /// Marks an image's file as not saved (its write failed): the next `takeChanged` gives it again.
    public func saveFailed(_ file: String) {
        counters.saveErrors += 1
        for (key, image) in images where Self.fileName(key) == file {
            var again = image
            again.changed = true
            images[key] = again
            hasChanges = true
        }
    }

    /// Takes a saved file (`takeChanged`'s JSON), its window running on from boot time `now`.
    /// Throws when it cannot be decoded; false when the image bound is reached.
    @discardableResult
    public func load(_ data: Data, at now: UInt64) throws -> Bool {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let file = try decoder.decode(File.self, from: data)
        guard images[file.image] != nil || images.count < settings.maxImages else { return false }
        var names = Set(file.names.prefix(settings.maxNames))
        if let known = images[file.image]?.names { names.formUnion(known) }
        let notKept = UInt64(max(0, file.names.count - settings.maxNames))
        counters.namesNotKept += notKept
        images[file.image] = Image(names: names, watchedNs: file.watchedNs, since: now, ended: !file.learning,
                                   namesNotKept: file.namesNotKept + notKept, changed: notKept > 0)
        if notKept > 0 { hasChanges = true }
        return true
    }

    /// A file that could not be read at start (counted in the status).
    public func countUnreadable() { counters.unreadableFiles += 1 }

    /// The status as of boot time `now`; `active`: whether a rule reads dns.name.new.
    public func status(at now: UInt64, active: Bool) -> Status {
        var status = counters
        status.learningSeconds = Double(settings.learningNs) / 1e9
        status.maxNames = settings.maxNames
        status.maxImages = settings.maxImages
        status.active = active
        status.images = images.count
        status.imagesLearning = images.values.count { !$0.ended && $0.watched(at: now) < settings.learningNs }
        status.names = images.values.reduce(0) { $0 + $1.names.count }
        return status
    }

    /// The file name of an image's baseline: its name with every byte but letters, digits, `.`,
    /// `_` and `-` as `%XX` (at most 100 bytes of it), a hash of the whole name, `.json`.
    static func fileName(_ image: String) -> String {
        var safe = ""
        for byte in image.utf8 {
            guard safe.utf8.count < 100 else { break }
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
                safe.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                safe += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in image.utf8 { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        return safe + "-" + String(String(hash, radix: 16).leftPadded(to: 16)) + ".json"
    }
}

private extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
