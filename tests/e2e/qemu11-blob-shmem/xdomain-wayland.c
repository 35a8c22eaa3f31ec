/* xdomain-wayland: a Wayland conversation over a virtio-gpu cross-domain context (capset 5)
 * from inside the test guest, through the Linux virtio_gpu driver's DRM uAPI only (no libdrm,
 * no libwayland: the few UAPI structs are declared below from include/uapi/drm/virtgpu_drm.h
 * of Linux 6.1, the Wayland messages are hand-encoded). It plays what sommelier's
 * virtgpu_channel.cc and wayland-proxy-virtwl do, for one connection:
 *
 *   GETPARAM CONTEXT_INIT + SUPPORTED_CAPSET_IDs (bit 5), GET_CAPS 5 (channels bit 1 = Wayland)
 *   CONTEXT_INIT: CAPSET_ID 5, NUM_RINGS 2, POLL_RINGS_MASK 1 << 1
 *   two one-page GUEST|MAPPABLE blobs (query ring, channel ring), MAP + mmap; the driver
 *     attaches them to the context (CTX_ATTACH_RESOURCE) when their GEM handles are created
 *   EXECBUFFER INIT {query ring, channel ring, channel type 1 = Wayland}      (no ring_idx)
 *   EXECBUFFER POLL with ring_idx 1 (VIRTGPU_EXECBUF_RING_IDX): the host holds its fence until
 *     it has written one RECEIVE at offset 0 of the channel ring; the driver then queues an
 *     8-byte drm_event VIRTGPU_EVENT_FENCE_SIGNALED on the card fd; after reading it, POLL again
 *   EXECBUFFER SEND: wl_display.get_registry + wl_display.sync                (no ring_idx)
 *   -> wl_registry.global events (printed), wl_callback.done
 * With -s (the wl_shm path), then:
 *   EXECBUFFER GET_IMAGE_REQUIREMENTS (ring_idx 0, fence fd): stride, size, blob_id from the
 *     query ring; CREATE_BLOB HOST3D MAPPABLE|SHAREABLE of that blob_id, MAP + mmap (the
 *     host-visible BAR), fill a test picture;
 *   SEND with the blob as identifier type 1 (VIRTGPU_BLOB): wl_registry.bind wl_compositor,
 *     wl_shm, xdg_wm_base; wl_shm.create_pool(fd = the blob) ; create_buffer; create_surface;
 *     xdg_surface + toplevel; commit; on xdg_surface.configure: ack, attach, damage, frame,
 *     commit; the frame callback's done means the host compositor has shown the picture.
 *
 * Every value that comes from the host (ring contents, Wayland events) is bounds-checked.
 * Prints "E2E:" lines; the last one is "E2E: XDOMAIN PASS ..." or "E2E: XDOMAIN FAIL ...".
 *
 * usage: xdomain-wayland [-s] [-w HOLD_S] [-t TIMEOUT_S]
 *   -s  also the wl_shm surface path (stretch); needs wl_compositor, wl_shm, xdg_wm_base
 *   -w  after the picture is shown ("E2E: XDOMAIN SHOWN ..."), keep the surface for HOLD_S
 *       seconds (answering pings) so that the host can take a screenshot (default 0)
 *   -t  overall timeout in seconds (default 60)
 * Test picture (-s), XRGB8888, W x H = 96 x 64: R = x * 2 + 8, G = y * 3 + 16, B = 0xA5, and X =
 * 0xFF (weston's pixman renderer copies the X byte into its output, and weston-screenshooter's
 * premultiplied PNG would turn X = 0 pixels into transparent black). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

/* --- DRM UAPI subset (Linux 6.1 include/uapi/drm/virtgpu_drm.h, drm.h) --- */
struct vg_getparam { uint64_t param, value; };
struct vg_map { uint64_t offset; uint32_t handle, pad; };
struct vg_execbuffer { uint32_t flags, size; uint64_t command, bo_handles; uint32_t num_bo_handles;
                       int32_t fence_fd; uint32_t ring_idx, pad; };
struct vg_get_caps { uint32_t cap_set_id, cap_set_ver; uint64_t addr; uint32_t size, pad; };
struct vg_create_blob { uint32_t blob_mem, blob_flags, bo_handle, res_handle; uint64_t size;
                        uint32_t pad, cmd_size; uint64_t cmd, blob_id; };
struct vg_ctx_param { uint64_t param, value; };
struct vg_ctx_init { uint32_t num_params, pad; uint64_t ctx_set_params; };
struct gem_close { uint32_t handle, pad; };
struct drm_event { uint32_t type, length; };
#define DIOWR(nr, t) _IOWR('d', nr, struct t)
#define GEM_CLOSE      _IOW('d', 0x09, struct gem_close)
#define VG_MAP         DIOWR(0x41, vg_map)
#define VG_EXECBUFFER  DIOWR(0x42, vg_execbuffer)
#define VG_GETPARAM    DIOWR(0x43, vg_getparam)
#define VG_GET_CAPS    DIOWR(0x49, vg_get_caps)
#define VG_CREATE_BLOB DIOWR(0x4a, vg_create_blob)
#define VG_CTX_INIT    DIOWR(0x4b, vg_ctx_init)
#define PARAM_CONTEXT_INIT 6
#define PARAM_SUPPORTED_CAPSET_IDS 7
#define CTX_PARAM_CAPSET_ID 1
#define CTX_PARAM_NUM_RINGS 2
#define CTX_PARAM_POLL_RINGS_MASK 3
#define EXECBUF_FENCE_FD_OUT 0x02
#define EXECBUF_RING_IDX 0x04
#define EVENT_FENCE_SIGNALED 0x90000000u
#define BLOB_MEM_GUEST 1
#define BLOB_MEM_HOST3D 2
#define BLOB_FLAG_MAPPABLE 1
#define BLOB_FLAG_SHAREABLE 2

/* --- cross-domain (rutabaga_gfx cross_domain_protocol.rs; 28 identifiers) --- */
#define CAPSET_CROSS_DOMAIN 5
#define XD_INIT 1
#define XD_GET_IMAGE_REQUIREMENTS 2
#define XD_POLL 3
#define XD_SEND 4
#define XD_RECEIVE 5
#define XD_READ 6
#define XD_QUERY_RING 0
#define XD_CHANNEL_RING 1
#define XD_CHANNEL_WAYLAND 1
#define XD_ID_VIRTGPU_BLOB 1
#define XD_MAX_IDS 28
#define XD_SEND_HDR 352               /* 8 + 4 + 4 + 3 * 28 * 4 */
#define XD_MAX_DATA (4096 - XD_SEND_HDR)
#define FOURCC_XR24 0x34325258u

#define PIC_W 96
#define PIC_H 64

static int fd = -1;
static double t_start, deadline;
static volatile uint8_t *qring, *cring;  /* query ring, channel ring (guest pages, host writes) */
static uint32_t qring_res, cring_res;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_BOOTTIME, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void fail(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    printf("E2E: XDOMAIN FAIL %s (after %.2f s)\n", buf, now() - t_start);
    exit(1);
}

static uint32_t rd32(const volatile uint8_t *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const volatile uint8_t *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }
static void wr32(uint8_t *p, uint32_t v) { p[0] = v; p[1] = v >> 8; p[2] = v >> 16; p[3] = v >> 24; }
static void wr16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }

/* One EXECBUFFER of a cross-domain command; ring < 0: no ring_idx (the global timeline, as
 * sommelier submits INIT and SEND). Returns the out-fence fd when want_fence, else -1. */
static int submit(const void *cmd, uint32_t size, int ring, int want_fence)
{
    struct vg_execbuffer e = { .size = size, .command = (uintptr_t)cmd, .fence_fd = -1 };
    if (ring >= 0) { e.flags |= EXECBUF_RING_IDX; e.ring_idx = ring; }
    if (want_fence) e.flags |= EXECBUF_FENCE_FD_OUT;
    if (ioctl(fd, VG_EXECBUFFER, &e)) fail("EXECBUFFER cmd %u size %u ring %d: %s", ((const uint8_t *)cmd)[0], size, ring, strerror(errno));
    return want_fence ? e.fence_fd : -1;
}

static void xd_header(uint8_t *b, uint8_t cmd, uint16_t size) { memset(b, 0, 8); b[0] = cmd; wr16(b + 2, size); }

static void send_poll(void)
{
    uint8_t b[16] = { 0 };
    xd_header(b, XD_POLL, sizeof b);
    submit(b, sizeof b, XD_CHANNEL_RING, 0);
}

static int n_sends;
/* SEND of Wayland wire bytes with up to XD_MAX_IDS type-1 identifiers (blob resource ids). */
static void xd_send(const uint8_t *data, uint32_t len, const uint32_t *blob_res, uint32_t n_ids)
{
    static uint8_t b[4096] __attribute__((aligned(8)));
    if (len > XD_MAX_DATA || n_ids > XD_MAX_IDS) fail("internal: SEND of %u bytes, %u ids", len, n_ids);
    uint32_t size = (XD_SEND_HDR + len + 3) & ~3u;   /* EXECBUFFER needs a dword multiple */
    memset(b, 0, size);
    xd_header(b, XD_SEND, XD_SEND_HDR + len);
    wr32(b + 8, n_ids);
    wr32(b + 12, len);
    for (uint32_t i = 0; i < n_ids; i++) {
        wr32(b + 16 + 4 * i, blob_res[i]);
        wr32(b + 128 + 4 * i, XD_ID_VIRTGPU_BLOB);
    }
    memcpy(b + XD_SEND_HDR, data, len);
    submit(b, size, -1, 0);
    n_sends++;
}

/* --- Wayland wire encoding --- */
static uint8_t out[XD_MAX_DATA] __attribute__((aligned(4)));
static uint32_t out_len;
static uint32_t *msg_begin(uint32_t obj, uint16_t op)
{
    if (out_len + 8 > sizeof out) fail("internal: request buffer full");
    uint32_t *m = (uint32_t *)(out + out_len);
    m[0] = obj; m[1] = op;          /* size patched by msg_end */
    out_len += 8;
    return m;
}
static void arg_u32(uint32_t v)
{
    if (out_len + 4 > sizeof out) fail("internal: request buffer full");
    wr32(out + out_len, v); out_len += 4;
}
static void arg_str(const char *s)
{
    uint32_t n = strlen(s) + 1, padded = (n + 3) & ~3u;
    if (out_len + 4 + padded > sizeof out) fail("internal: request buffer full");
    arg_u32(n);
    memset(out + out_len, 0, padded);
    memcpy(out + out_len, s, n);
    out_len += padded;
}
static void msg_end(uint32_t *m) { m[1] |= (uint32_t)((uint8_t *)(out + out_len) - (uint8_t *)m) << 16; }
static void flush_requests(const uint32_t *blob_res, uint32_t n_ids)
{
    xd_send(out, out_len, blob_res, n_ids);
    out_len = 0;
}

/* --- object ids (client side, allocated in order of first use, as libwayland-server wants) --- */
enum { O_DISPLAY = 1, O_REGISTRY, O_SYNC1, O_COMPOSITOR, O_SHM, O_WM_BASE, O_POOL, O_BUFFER, O_SURFACE,
       O_XDG_SURFACE, O_TOPLEVEL, O_SYNC2, O_FRAME };

/* --- state --- */
static int sync1_done, sync2_done, frame_done, configured, n_globals, n_formats, xrgb_ok;
static uint32_t configure_serial, configures, pings;
static uint32_t name_compositor, name_shm, name_wm_base, ver_compositor, ver_wm_base;
static int shm_mode;

static void on_event(uint32_t obj, uint32_t op, const uint8_t *a, uint32_t alen)
{
    /* string argument at a + off: returns it (NUL-terminated inside the message) or fails */
    #define NEED(n) do { if (alen < (n)) fail("event %u.%u: %u argument bytes, need %u", obj, op, alen, (unsigned)(n)); } while (0)
    if (obj == O_DISPLAY && op == 0) {           /* error(object, code, message) */
        NEED(12);
        uint32_t sl = rd32(a + 8);
        char msg[200] = "";
        if (sl > 0 && sl <= alen - 12 && a[12 + sl - 1] == 0) snprintf(msg, sizeof msg, "%s", (const char *)a + 12);
        fail("wl_display.error object %u code %u: %s", rd32(a), rd32(a + 4), msg);
    } else if (obj == O_DISPLAY && op == 1) {    /* delete_id */
        NEED(4);
    } else if (obj == O_REGISTRY && op == 0) {   /* global(name, interface, version) */
        NEED(12);
        uint32_t name = rd32(a), sl = rd32(a + 4);
        if (sl == 0 || sl > 256 || 8 + ((sl + 3) & ~3u) + 4 > alen || a[8 + sl - 1] != 0)
            fail("wl_registry.global with a bad interface string (length %u, %u argument bytes)", sl, alen);
        const char *iface = (const char *)a + 8;
        if (strlen(iface) != sl - 1) fail("wl_registry.global: interface string with an embedded NUL");
        uint32_t ver = rd32(a + 8 + ((sl + 3) & ~3u));
        printf("E2E: wl_registry.global name=%u interface=%s version=%u\n", name, iface, ver);
        n_globals++;
        if (!strcmp(iface, "wl_compositor")) { name_compositor = name; ver_compositor = ver; }
        if (!strcmp(iface, "wl_shm")) name_shm = name;
        if (!strcmp(iface, "xdg_wm_base")) { name_wm_base = name; ver_wm_base = ver; }
    } else if (obj == O_REGISTRY && op == 1) {   /* global_remove */
        NEED(4);
    } else if (obj == O_SYNC1 && op == 0) {
        NEED(4);
        printf("E2E: wl_callback.done (wl_display.sync) serial=%u after %d globals\n", rd32(a), n_globals);
        sync1_done = 1;
    } else if (obj == O_SYNC2 && op == 0) {
        NEED(4);
        sync2_done = 1;
    } else if (obj == O_FRAME && op == 0) {
        NEED(4);
        printf("E2E: wl_callback.done (wl_surface.frame) time=%u\n", rd32(a));
        frame_done = 1;
    } else if (obj == O_SHM && op == 0) {        /* format */
        NEED(4);
        n_formats++;
        if (rd32(a) == 1) xrgb_ok = 1;            /* WL_SHM_FORMAT_XRGB8888 */
    } else if (obj == O_WM_BASE && op == 0) {    /* ping(serial) -> pong */
        NEED(4);
        pings++;
        uint32_t *m = msg_begin(O_WM_BASE, 3); arg_u32(rd32(a)); msg_end(m);
        flush_requests(NULL, 0);
    } else if (obj == O_XDG_SURFACE && op == 0) { /* configure(serial) */
        NEED(4);
        configure_serial = rd32(a);
        configures++;
        configured = 1;
    } else if (obj == O_TOPLEVEL && op == 0) {   /* configure(width, height, states) */
        NEED(12);
        printf("E2E: xdg_toplevel.configure %dx%d\n", (int32_t)rd32(a), (int32_t)rd32(a + 4));
    } else if (obj == O_TOPLEVEL && op == 1) {
        fail("xdg_toplevel.close from the compositor");
    } else if ((obj == O_BUFFER && op == 0) || (obj == O_SURFACE && op <= 1) || obj == O_TOPLEVEL) {
        /* wl_buffer.release, wl_surface.enter/leave, newer toplevel events: nothing to do */
    } else {
        printf("E2E: note: event %u.%u (%u argument bytes) not handled\n", obj, op, alen);
    }
    #undef NEED
}

/* Wayland bytes received so far (messages may span RECEIVEs). */
static uint8_t in[65536];
static uint32_t in_len;
static unsigned n_receives, n_events;

static void parse_events(void)
{
    uint32_t pos = 0;
    while (in_len - pos >= 8) {
        uint32_t obj = rd32(in + pos), w = rd32(in + pos + 4), size = w >> 16, op = w & 0xffff;
        if (size < 8 || size % 4) fail("malformed Wayland event: object %u opcode %u size %u", obj, op, size);
        if (size > in_len - pos) break;          /* the rest comes with the next RECEIVE */
        n_events++;
        on_event(obj, op, in + pos + 8, size - 8);
        pos += size;
    }
    memmove(in, in + pos, in_len - pos);
    in_len -= pos;
}

/* Wait for the next channel event (the POLL's fence on ring 1), take the RECEIVE at offset 0
 * of the channel ring, parse its Wayland events, and POLL again. 0 on timeout. */
static int pump(double until)
{
    for (;;) {
        double left = until - now();
        if (left <= 0) return 0;
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) fail("poll on the card fd: %s", strerror(errno));
        if (r == 0) continue;
        uint8_t evbuf[1024];
        ssize_t n = read(fd, evbuf, sizeof evbuf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        if (n < (ssize_t)sizeof(struct drm_event)) fail("read of DRM events returned %zd: %s", n, n < 0 ? strerror(errno) : "short");
        int got = 0;
        for (ssize_t off = 0; off + (ssize_t)sizeof(struct drm_event) <= n;) {
            struct drm_event ev;
            memcpy(&ev, evbuf + off, sizeof ev);
            if (ev.length < sizeof ev || ev.length > n - off) fail("DRM event with length %u", ev.length);
            if (ev.type == EVENT_FENCE_SIGNALED) got++;
            else printf("E2E: note: DRM event type 0x%x ignored\n", ev.type);
            off += ev.length;
        }
        if (got != 1) fail("%d fence events for one outstanding POLL", got);
        uint8_t cmd = cring[0];
        if (cmd == XD_READ) fail("READ on the channel ring: no pipes were sent");
        if (cmd != XD_RECEIVE) fail("channel ring holds command %u, want RECEIVE (5)", cmd);
        uint32_t nids = rd32(cring + 8), size = rd32(cring + 12);
        if (nids > XD_MAX_IDS || size > XD_MAX_DATA) fail("RECEIVE with num_identifiers %u, opaque_data_size %u", nids, size);
        if (nids == 0 && size == 0) fail("RECEIVE with nothing: the host's Wayland connection closed");
        if (nids) fail("RECEIVE carries %u identifiers (type %u); this probe expects none", nids, rd32(cring + 128));
        if (size > sizeof in - in_len) fail("more than %zu bytes of unparsed Wayland events", sizeof in);
        for (uint32_t i = 0; i < size; i++) in[in_len + i] = cring[XD_SEND_HDR + i];
        in_len += size;
        n_receives++;
        send_poll();                              /* hand the ring back before parsing */
        parse_events();
        return 1;
    }
}

static int wait_for(int *flag, const char *what)
{
    while (!*flag)
        if (!pump(deadline)) fail("timeout waiting for %s (%u RECEIVEs, %u events so far)", what, n_receives, n_events);
    return 1;
}

static uint32_t gem_map(uint32_t bo, uint64_t size, volatile uint8_t **p)
{
    struct vg_map m = { .handle = bo };
    if (ioctl(fd, VG_MAP, &m)) return errno;
    void *v = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, m.offset);
    if (v == MAP_FAILED) return errno;
    *p = v;
    return 0;
}

static void ring_blob(volatile uint8_t **p, uint32_t *res)
{
    struct vg_create_blob c = { .blob_mem = BLOB_MEM_GUEST, .blob_flags = BLOB_FLAG_MAPPABLE, .size = 4096 };
    if (ioctl(fd, VG_CREATE_BLOB, &c)) fail("CREATE_BLOB GUEST ring: %s", strerror(errno));
    int e = gem_map(c.bo_handle, 4096, p);
    if (e) fail("map ring res %u: %s", c.res_handle, strerror(e));
    memset((void *)*p, 0, 4096);
    *res = c.res_handle;
}

static uint32_t pic_pixel(uint32_t x, uint32_t y) { return 0xff000000u | (x * 2 + 8) << 16 | (y * 3 + 16) << 8 | 0xA5; }

static void shm_path(double hold)
{
    if (!name_compositor || !name_shm || !name_wm_base)
        fail("the host compositor lacks wl_compositor, wl_shm or xdg_wm_base (names %u %u %u)", name_compositor, name_shm, name_wm_base);

    /* 1. GET_IMAGE_REQUIREMENTS on the query ring, fenced on ring 0 */
    uint8_t g[24];
    xd_header(g, XD_GET_IMAGE_REQUIREMENTS, sizeof g);
    wr32(g + 8, PIC_W); wr32(g + 12, PIC_H); wr32(g + 16, FOURCC_XR24); wr32(g + 20, (1 << 4) | 1);
    memset((void *)qring, 0xEE, 64);
    int ff = submit(g, sizeof g, XD_QUERY_RING, 1);
    struct pollfd p = { .fd = ff, .events = POLLIN };
    if (poll(&p, 1, 10000) != 1) fail("the GET_IMAGE_REQUIREMENTS fence did not signal within 10 s");
    close(ff);
    uint32_t stride = rd32(qring), offset0 = rd32(qring + 16), blob_id = rd32(qring + 48), map_info = rd32(qring + 52);
    uint64_t size = rd64(qring + 40), modifier = rd64(qring + 32);
    printf("E2E: image requirements %ux%u XR24: stride=%u offset=%u size=%llu blob_id=%u map_info=0x%x modifier=0x%llx\n",
           PIC_W, PIC_H, stride, offset0, (unsigned long long)size, blob_id, map_info, (unsigned long long)modifier);
    if (stride < PIC_W * 4 || stride > 65536 || offset0 != 0 || size < (uint64_t)stride * PIC_H || size > (64u << 20) || size % 4096)
        fail("implausible image requirements");

    /* 2. the HOST3D blob of that blob_id, mapped through the host-visible region */
    struct vg_create_blob c = { .blob_mem = BLOB_MEM_HOST3D, .blob_flags = BLOB_FLAG_MAPPABLE | BLOB_FLAG_SHAREABLE,
                                .size = size, .blob_id = blob_id };
    if (ioctl(fd, VG_CREATE_BLOB, &c)) fail("CREATE_BLOB HOST3D blob_id %u size %llu: %s", blob_id, (unsigned long long)size, strerror(errno));
    volatile uint8_t *pix;
    int e = gem_map(c.bo_handle, size, &pix);
    if (e) fail("map HOST3D res %u: %s", c.res_handle, strerror(e));
    for (uint32_t y = 0; y < PIC_H; y++)
        for (uint32_t x = 0; x < PIC_W; x++)
            *(volatile uint32_t *)(pix + (size_t)y * stride + x * 4) = pic_pixel(x, y);
    uint32_t bad = 0;
    for (uint32_t y = 0; y < PIC_H; y++)
        for (uint32_t x = 0; x < PIC_W; x++)
            bad += *(volatile uint32_t *)(pix + (size_t)y * stride + x * 4) != pic_pixel(x, y);
    if (bad) fail("%u pixels of the mapped HOST3D blob res %u do not read back", bad, c.res_handle);
    printf("E2E: HOST3D blob res=%u size=%llu mapped, %ux%u picture drawn\n", c.res_handle, (unsigned long long)size, PIC_W, PIC_H);

    /* 3. one SEND: binds, the pool with the blob as its fd, buffer, surface, toplevel, commit */
    uint32_t *m;
    m = msg_begin(O_REGISTRY, 0); arg_u32(name_compositor); arg_str("wl_compositor"); arg_u32(ver_compositor < 4 ? ver_compositor : 4); arg_u32(O_COMPOSITOR); msg_end(m);
    m = msg_begin(O_REGISTRY, 0); arg_u32(name_shm); arg_str("wl_shm"); arg_u32(1); arg_u32(O_SHM); msg_end(m);
    m = msg_begin(O_REGISTRY, 0); arg_u32(name_wm_base); arg_str("xdg_wm_base"); arg_u32(1); arg_u32(O_WM_BASE); msg_end(m);
    m = msg_begin(O_SHM, 0); arg_u32(O_POOL); arg_u32((uint32_t)size); msg_end(m);              /* create_pool(id, fd, size) */
    m = msg_begin(O_POOL, 0); arg_u32(O_BUFFER); arg_u32(0); arg_u32(PIC_W); arg_u32(PIC_H); arg_u32(stride); arg_u32(1); msg_end(m);
    m = msg_begin(O_COMPOSITOR, 0); arg_u32(O_SURFACE); msg_end(m);
    m = msg_begin(O_WM_BASE, 2); arg_u32(O_XDG_SURFACE); arg_u32(O_SURFACE); msg_end(m);
    m = msg_begin(O_XDG_SURFACE, 1); arg_u32(O_TOPLEVEL); msg_end(m);
    m = msg_begin(O_TOPLEVEL, 2); arg_str("xdomain-wayland"); msg_end(m);                         /* set_title */
    m = msg_begin(O_SURFACE, 6); msg_end(m);                                                       /* commit */
    m = msg_begin(O_DISPLAY, 0); arg_u32(O_SYNC2); msg_end(m);
    flush_requests(&c.res_handle, 1);
    wait_for(&sync2_done, "the round trip after creating the pool, buffer and toplevel");
    printf("E2E: wl_shm formats=%d (xrgb8888 %s), pool of res %u created\n", n_formats, xrgb_ok ? "yes" : "NO", c.res_handle);
    if (!xrgb_ok) fail("wl_shm does not list XRGB8888");
    wait_for(&configured, "xdg_surface.configure");
    m = msg_begin(O_XDG_SURFACE, 4); arg_u32(configure_serial); msg_end(m);                      /* ack_configure */
    m = msg_begin(O_SURFACE, 1); arg_u32(O_BUFFER); arg_u32(0); arg_u32(0); msg_end(m);           /* attach */
    m = msg_begin(O_SURFACE, 2); arg_u32(0); arg_u32(0); arg_u32(PIC_W); arg_u32(PIC_H); msg_end(m); /* damage */
    m = msg_begin(O_SURFACE, 3); arg_u32(O_FRAME); msg_end(m);                                    /* frame */
    m = msg_begin(O_SURFACE, 6); msg_end(m);                                                       /* commit */
    flush_requests(NULL, 0);
    wait_for(&frame_done, "the frame callback of the committed picture");
    printf("E2E: XDOMAIN SHOWN res=%u %ux%u pixel(x,y)=0xff<<24|(x*2+8)<<16|(y*3+16)<<8|0xa5 configures=%u; holding %.0f s\n",
           c.res_handle, PIC_W, PIC_H, configures, hold);
    double until = now() + hold;
    if (until > deadline) until = deadline;
    while (pump(until)) {}                        /* answer pings while the host looks */
    if (pings) printf("E2E: answered %u xdg_wm_base.ping\n", pings);
}

int main(int argc, char **argv)
{
    int opt;
    double hold = 0, timeout = 60;
    while ((opt = getopt(argc, argv, "sw:t:")) != -1) {
        switch (opt) {
        case 's': shm_mode = 1; break;
        case 'w': hold = atof(optarg); break;
        case 't': timeout = atof(optarg); break;
        default: fprintf(stderr, "usage: xdomain-wayland [-s] [-w HOLD_S] [-t TIMEOUT_S]\n"); return 2;
        }
    }
    if (!(hold >= 0 && hold <= 600) || !(timeout > 0 && timeout <= 3600)) { fprintf(stderr, "bad -w/-t\n"); return 2; }
    setvbuf(stdout, NULL, _IOLBF, 0);
    t_start = now();
    deadline = t_start + timeout;
    fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
    if (fd < 0) fail("open /dev/dri/card0: %s", strerror(errno));

    uint64_t ctx_init = 0, capset_ids = 0;
    struct vg_getparam gp = { .param = PARAM_CONTEXT_INIT, .value = (uintptr_t)&ctx_init };
    if (ioctl(fd, VG_GETPARAM, &gp)) fail("GETPARAM CONTEXT_INIT: %s", strerror(errno));
    gp = (struct vg_getparam){ .param = PARAM_SUPPORTED_CAPSET_IDS, .value = (uintptr_t)&capset_ids };
    if (ioctl(fd, VG_GETPARAM, &gp)) fail("GETPARAM SUPPORTED_CAPSET_IDs: %s", strerror(errno));
    printf("E2E: context_init=%llu supported_capset_ids=0x%llx\n", (unsigned long long)ctx_init, (unsigned long long)capset_ids);
    if (!ctx_init) fail("the driver did not negotiate VIRTIO_GPU_F_CONTEXT_INIT");
    if (!(capset_ids & (1u << CAPSET_CROSS_DOMAIN))) fail("capset 5 (cross-domain) is not in the capset mask");

    uint32_t caps[4] = { 0 };
    struct vg_get_caps gc = { .cap_set_id = CAPSET_CROSS_DOMAIN, .addr = (uintptr_t)caps, .size = sizeof caps };
    if (ioctl(fd, VG_GET_CAPS, &gc)) fail("GET_CAPS 5: %s", strerror(errno));
    printf("E2E: capset 5: version=%u supported_channels=0x%x dmabuf=%u external_gpu_memory=%u\n", caps[0], caps[1], caps[2], caps[3]);
    if (!(caps[1] & (1u << XD_CHANNEL_WAYLAND))) fail("capset 5 does not offer the Wayland channel");

    struct vg_ctx_param cp[3] = { { CTX_PARAM_CAPSET_ID, CAPSET_CROSS_DOMAIN }, { CTX_PARAM_NUM_RINGS, 2 },
                                  { CTX_PARAM_POLL_RINGS_MASK, 1u << XD_CHANNEL_RING } };
    struct vg_ctx_init ci = { .num_params = 3, .ctx_set_params = (uintptr_t)cp };
    if (ioctl(fd, VG_CTX_INIT, &ci)) fail("CONTEXT_INIT capset 5, 2 rings, poll mask 0x2: %s", strerror(errno));
    printf("E2E: CONTEXT_INIT capset=5 num_rings=2 poll_rings_mask=0x2 ok\n");

    ring_blob(&qring, &qring_res);
    ring_blob(&cring, &cring_res);
    printf("E2E: rings: query res=%u channel res=%u (GUEST|MAPPABLE, one page each)\n", qring_res, cring_res);

    uint8_t init[20];
    xd_header(init, XD_INIT, sizeof init);
    wr32(init + 8, qring_res); wr32(init + 12, cring_res); wr32(init + 16, XD_CHANNEL_WAYLAND);
    submit(init, sizeof init, -1, 0);
    send_poll();

    uint32_t *m = msg_begin(O_DISPLAY, 1); arg_u32(O_REGISTRY); msg_end(m);   /* get_registry */
    m = msg_begin(O_DISPLAY, 0); arg_u32(O_SYNC1); msg_end(m);                 /* sync */
    flush_requests(NULL, 0);
    printf("E2E: INIT + POLL + SEND (wl_display.get_registry, wl_display.sync) submitted\n");
    wait_for(&sync1_done, "wl_callback.done of wl_display.sync");
    if (n_globals == 0) fail("wl_callback.done came without any wl_registry.global");
    if (!name_compositor) fail("no wl_compositor global");
    printf("E2E: RESULT registry globals=%d receives=%u events=%u in %.2f s\n", n_globals, n_receives, n_events, now() - t_start);

    if (shm_mode) shm_path(hold);
    printf("E2E: XDOMAIN PASS globals=%d receives=%u events=%u sends=%d%s in %.2f s\n", n_globals, n_receives, n_events,
           n_sends, shm_mode ? " shm=shown" : "", now() - t_start);
    return 0;
}
