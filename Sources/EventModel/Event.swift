import Foundation

/// A OneWindow event: the CloudEvents 1.0 context attributes, two tracing extensions, and a JSON body.
///
/// On the log an event is one record in the CloudEvents Kafka binding, binary mode (see
/// ``CloudEventsBinding``): the attributes travel as `ce_*` headers, the body as the value, and the
/// subject (the entity whose order matters: an application id, a resident ID number, a credit
/// code) as the key.
///
/// ```swift
/// let event = Event(
///     type: "household.birth.registered", source: "/departments/household-registry",
///     subject: "440604202401150012", data: Data(#"{"childName":"李小明"}"#.utf8))
/// ```
public struct Event: Sendable, Hashable {
    /// Unique per source; with `source` it identifies the event, so consumers de-duplicate on it.
    public var id: String
    /// Who produced it, a URI reference such as `/departments/household-registry`.
    public var source: String
    /// The event type, e.g. `household.birth.registered`; the catalog maps it to a JSON Schema.
    public var type: String
    /// The entity the event is about; also the record key. `nil` when there is none.
    public var subject: String?
    /// When the fact happened (not when it was published).
    public var time: Date
    /// Always `1.0`.
    public var specVersion: String
    /// The body's media type. Default: `application/json`.
    public var dataContentType: String
    /// The id of the first event of the chain this event belongs to (an application's submission).
    public var correlationId: String?
    /// The id of the event that directly caused this one.
    public var causationId: String?
    /// The body: JSON bytes, kept exactly as given.
    public var data: Data

    /// Makes an event; the id defaults to a new UUID and the time to now.
    public init(
        id: String = UUID().uuidString.lowercased(), type: String, source: String, subject: String?,
        time: Date = Date(), data: Data, dataContentType: String = "application/json",
        correlationId: String? = nil, causationId: String? = nil, specVersion: String = "1.0"
    ) {
        self.id = id
        self.source = source
        self.type = type
        self.subject = subject
        self.time = time
        self.specVersion = specVersion
        self.dataContentType = dataContentType
        self.correlationId = correlationId
        self.causationId = causationId
        self.data = data
    }

    /// An event caused by this one: same correlation, causation pointing here.
    public func caused(type: String, source: String, subject: String?, time: Date, data: Data, id: String)
        -> Event
    {
        Event(
            id: id, type: type, source: source, subject: subject, time: time, data: data,
            correlationId: correlationId ?? self.id, causationId: self.id)
    }
}
