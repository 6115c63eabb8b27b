// Evidence for sanitize/tsan.supp (FUZZING.md, "Sanitizers"): Swift 6.3's Synchronization.Mutex is
// invisible to ThreadSanitizer on Linux. Its lock is a futex in the (uninstrumented) standard
// library, so TSan sees no happens-before between two threads' withLock bodies and reports
// every access inside them as a "Swift access race". The same program with NSLock (a
// pthread mutex, which TSan intercepts) reports nothing.
//
//   swiftc -sanitize=thread sanitize/mutex-false-positive.swift -o /tmp/mutex && /tmp/mutex
//       -> WARNING: ThreadSanitizer: Swift access race ... in closure #1 in closure #1
//   swiftc -sanitize=thread -D NSLOCK sanitize/mutex-false-positive.swift -o /tmp/nslock && /tmp/nslock
//       -> no warning
import Foundation
import Synchronization

let group = DispatchGroup()
#if NSLOCK
let lock = NSLock()
nonisolated(unsafe) var table: [Int: Int] = [:]
for t in 0..<2 {
    DispatchQueue.global().async(group: group) { for i in 0..<100_000 { lock.withLock { table[i % 7] = t } } }
}
group.wait()
print(lock.withLock { table.count })
#else
let table = Mutex<[Int: Int]>([:])
for t in 0..<2 {
    DispatchQueue.global().async(group: group) { for i in 0..<100_000 { table.withLock { $0[i % 7] = t } } }
}
group.wait()
print(table.withLock { $0.count })
#endif
