import Foundation
import GRDB
import GRDBSQLite

/// A hot statement (the orchestrator store's batch writes and stamp look-ups, the embedded log's
/// appends and reads), bound and stepped with SQLite's own functions on the statement GRDB
/// prepared and caches.
///
/// Why: GRDB's `StatementArguments` box every value in an array of `DatabaseValue` and its
/// execution goes through a cursor; for the few small statements a batch runs per input that
/// machinery cost about as much CPU as SQLite's own work (perf: in the benchmark's store
/// transactions, GRDB's binding and stepping about 6 % of the whole process against 5.8 % in
/// `sqlite3_step`). Values are bound as GRDB binds them (a `String` as text, `Data` as a blob,
/// integers and `Bool` as integers, `Double` as a real, `nil` as NULL), copied by SQLite
/// (`SQLITE_TRANSIENT`), so nothing here outlives the call.
///
/// Use only statements that GRDB does not run itself elsewhere (the statement is left reset with
/// its last bindings, not in the state GRDB keeps for its own arguments), and only inside a
/// `Database` access closure (the statement is that connection's).
public struct RawStatement {
    public let statement: Statement
    let db: Database

    /// The cached statement of `sql` on `db`.
    public init(_ sql: String, _ db: Database) throws {
        statement = try db.cachedStatement(sql: sql)
        self.db = db
    }

    private var handle: OpaquePointer { statement.sqliteStatement }

    /// Binds `values` to the statement's parameters, in order.
    public func bind(_ values: [RawValue]) {
        let handle = handle
        sqlite3_reset(handle)
        for (offset, value) in values.enumerated() {
            let index = CInt(offset + 1)
            switch value {
            case .null: sqlite3_bind_null(handle, index)
            case .integer(let number): sqlite3_bind_int64(handle, index, number)
            case .real(let number): sqlite3_bind_double(handle, index, number)
            case .text(var text): text.withUTF8 { Self.bindText($0, handle, index) }
            case .utf8Text(let utf8): utf8.withUnsafeBufferPointer { Self.bindText($0, handle, index) }
            case .blob(let data):
                data.withUnsafeBytes { bytes in
                    if bytes.isEmpty {
                        sqlite3_bind_zeroblob(handle, index, 0)
                    } else {
                        sqlite3_bind_blob(handle, index, bytes.baseAddress, CInt(bytes.count), transient)
                    }
                }
            }
        }
    }

    /// Binds UTF-8 bytes as text, SQLite copying them.
    private static func bindText(_ bytes: UnsafeBufferPointer<UInt8>, _ handle: OpaquePointer, _ index: CInt) {
        // An empty buffer may have no address, which SQLite would bind as NULL.
        if bytes.isEmpty {
            sqlite3_bind_text(handle, index, "", 0, transient)
        } else {
            sqlite3_bind_text(
                handle, index, UnsafeRawPointer(bytes.baseAddress!).assumingMemoryBound(to: CChar.self),
                CInt(bytes.count), transient)
        }
    }

    /// Runs a statement that returns no row (bound first with ``bind(_:)``).
    /// - Returns: the number of rows it changed.
    @discardableResult
    public func execute() throws -> Int {
        let code = sqlite3_step(handle)
        defer { sqlite3_reset(handle) }
        guard code == SQLITE_DONE else { throw failure(code) }
        return Int(sqlite3_changes(db.sqliteConnection))
    }

    /// Runs a query of one column and gives its first row's value: `nil` when there is no row,
    /// `.some(nil)` for a NULL.
    public func int64() throws -> Int64?? {
        let code = sqlite3_step(handle)
        defer { sqlite3_reset(handle) }
        switch code {
        case SQLITE_DONE: return nil
        case SQLITE_ROW:
            return sqlite3_column_type(handle, 0) == SQLITE_NULL ? .some(nil) : .some(sqlite3_column_int64(handle, 0))
        default: throw failure(code)
        }
    }

    /// Runs a query of two integer columns and gives its first row's values (`nil` for a NULL),
    /// or `nil` when there is no row.
    public func int64Pair() throws -> (Int64?, Int64?)? {
        let code = sqlite3_step(handle)
        defer { sqlite3_reset(handle) }
        switch code {
        case SQLITE_DONE: return nil
        case SQLITE_ROW:
            func column(_ index: CInt) -> Int64? {
                sqlite3_column_type(handle, index) == SQLITE_NULL ? nil : sqlite3_column_int64(handle, index)
            }
            return (column(0), column(1))
        default: throw failure(code)
        }
    }

    /// Steps a query (bound first with ``bind(_:)``) through its rows: `row` is called with each,
    /// read with the column accessors of ``Row``, then the statement is reset.
    public func forEachRow(_ row: (Row) throws -> Void) throws {
        let handle = handle
        defer { sqlite3_reset(handle) }
        while true {
            let code = sqlite3_step(handle)
            switch code {
            case SQLITE_ROW: try row(Row(handle: handle))
            case SQLITE_DONE: return
            default: throw failure(code)
            }
        }
    }

    /// The current row of ``forEachRow(_:)``; valid only inside its closure.
    public struct Row {
        let handle: OpaquePointer

        /// Column `index` as an integer (0 for NULL).
        public func int64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }
        /// Column `index`'s bytes, copied (`nil` for NULL, empty for an empty blob).
        public func data(_ index: Int32) -> Data? {
            if sqlite3_column_type(handle, index) == SQLITE_NULL { return nil }
            // The pointer comes first, then the size (SQLite's documented order).
            guard let bytes = sqlite3_column_blob(handle, index) else { return Data() }
            return Data(bytes: bytes, count: Int(sqlite3_column_bytes(handle, index)))
        }
    }

    private func failure(_ code: CInt) -> DatabaseError {
        let message = db.sqliteConnection.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: statement.sql)
    }
}

/// A value bound by ``RawStatement``.
public enum RawValue: Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    /// Text given as its UTF-8 bytes, bound as they are (the same as ``text(_:)`` of the `String`
    /// they spell, without making it): the caller's bytes must be valid UTF-8, such as a JSON
    /// writer's output from `String`s.
    case utf8Text([UInt8])
    case blob(Data)

    public static func int(_ value: Int) -> RawValue { .integer(Int64(value)) }
    public static func bool(_ value: Bool) -> RawValue { .integer(value ? 1 : 0) }
    public static func optionalText(_ value: String?) -> RawValue { value.map { .text($0) } ?? .null }
    public static func optionalInteger(_ value: Int64?) -> RawValue { value.map { .integer($0) } ?? .null }
    public static func optionalReal(_ value: Double?) -> RawValue { value.map { .real($0) } ?? .null }
}

/// SQLite's `SQLITE_TRANSIENT`: it copies the bound bytes before the call returns.
private let transient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)
