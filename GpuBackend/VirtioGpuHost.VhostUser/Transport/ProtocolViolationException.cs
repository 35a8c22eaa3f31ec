namespace VirtioGpuHost.VhostUser.Transport;

/// <summary>
/// The peer broke the framing or the protocol so badly that the connection cannot go on
/// (bad header version, oversized message, truncated message). The connection is closed;
/// nothing else is affected. Confined to the vhost-user layer.
/// </summary>
public sealed class ProtocolViolationException(string message) : Exception(message);
