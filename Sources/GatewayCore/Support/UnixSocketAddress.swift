#if canImport(Glibc)
import Glibc
#endif

/// `sockaddr_un` for a Unix socket path, for the few places that use sockets directly (systemd notification,
/// probing the admin socket).
enum UnixSocketAddress {
    /// Calls `body` with the address of `path` and its length; `@name` is `name` in the abstract namespace.
    /// - Returns: nil when the path does not fit in `sun_path`.
    static func with<Result>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Result) -> Result? {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        // A path's length counts its terminating NUL; an abstract name has none.
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, length) }
        }
    }
}
