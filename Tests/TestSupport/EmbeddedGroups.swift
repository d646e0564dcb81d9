import Foundation
import GRDB

/// The live members of a consumer group in an embedded log file, read straight from its tables:
/// for tests that must know every member process has joined before they write.
public func embeddedGroupMembers(path: String, group: String) throws -> Int {
    let queue = try sharedDatabase(path)
    return try queue.read { db in
        try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM group_member WHERE group_id = ?", arguments: [group]) ?? 0
    }
}
