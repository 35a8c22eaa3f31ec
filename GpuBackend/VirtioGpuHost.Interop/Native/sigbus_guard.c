/*
 * SIGBUS guard for mappings of files another process may truncate (guest RAM a VMM shares
 * with us, fds a Wayland client sends). Touching a page past the end of a truncated file
 * raises SIGBUS, which kills a .NET process. Like libwayland-server's wl_shm, the handler
 * replaces the whole registered mapping with anonymous zero pages (MAP_FIXED) and returns:
 * the faulting access is retried and reads zeros (writes go to memory nobody else sees).
 * The mapping is marked faulted so its owner can log and refuse further use.
 * SIGBUS anywhere else is passed to the handler that was installed before (the runtime's).
 *
 * The table is fixed-size and lock-free (a signal handler may not take locks).
 * Build: gcc -O2 -fPIC -shared -o libvgh_sigbus.so sigbus_guard.c (done by the Interop project).
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#define SLOTS 16384
enum { FREE = 0, CLAIMED = 1, LIVE = 2, DYING = 3 };

struct slot {
    _Atomic int state;
    uintptr_t start, length;
    _Atomic long faults;
};

static struct slot table[SLOTS];
static _Atomic int active_handlers;
static _Atomic long total_faults;
static _Atomic int installed;
static struct sigaction previous;

static void chain(int sig, siginfo_t *info, void *context)
{
    if (previous.sa_flags & SA_SIGINFO) {
        if (previous.sa_sigaction) previous.sa_sigaction(sig, info, context);
        return;
    }
    if (previous.sa_handler == SIG_IGN) return;
    if (previous.sa_handler == SIG_DFL) {
        /* Restore the default and return: the access faults again and the process dies as it would have. */
        signal(sig, SIG_DFL);
        return;
    }
    previous.sa_handler(sig);
}

static void on_sigbus(int sig, siginfo_t *info, void *context)
{
    uintptr_t addr = (uintptr_t)info->si_addr;
    atomic_fetch_add(&active_handlers, 1);
    for (int i = 0; i < SLOTS; i++) {
        struct slot *s = &table[i];
        if (atomic_load(&s->state) != LIVE) continue;
        if (addr - s->start >= s->length) continue;
        void *p = mmap((void *)s->start, s->length, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (p != MAP_FAILED) {
            atomic_fetch_add(&s->faults, 1);
            atomic_fetch_add(&total_faults, 1);
            atomic_fetch_sub(&active_handlers, 1);
            return;
        }
        break;
    }
    atomic_fetch_sub(&active_handlers, 1);
    chain(sig, info, context);
}

/* Installs the handler once; returns 0, or -1 (errno set). */
int vgh_sigbus_install(void)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&installed, &expected, 1)) return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGBUS, &sa, &previous) != 0) {
        atomic_store(&installed, 0);
        return -1;
    }
    return 0;
}

/* Registers [start, start+length) (page-aligned, the whole mmap); returns the slot or -1 when full. */
int vgh_sigbus_register(uintptr_t start, uintptr_t length)
{
    for (int i = 0; i < SLOTS; i++) {
        int expected = FREE;
        if (!atomic_compare_exchange_strong(&table[i].state, &expected, CLAIMED)) continue;
        table[i].start = start;
        table[i].length = length;
        atomic_store(&table[i].faults, 0);
        atomic_store(&table[i].state, LIVE);
        return i;
    }
    return -1;
}

/* Unregisters a slot; returns once no handler can still be replacing its pages (call before munmap). */
void vgh_sigbus_unregister(int slot)
{
    if (slot < 0 || slot >= SLOTS) return;
    atomic_store(&table[slot].state, DYING);
    while (atomic_load(&active_handlers) != 0) { }
    atomic_store(&table[slot].state, FREE);
}

/* How often the slot's mapping faulted (it was replaced by zero pages the first time). */
long vgh_sigbus_faults(int slot)
{
    if (slot < 0 || slot >= SLOTS) return 0;
    return atomic_load(&table[slot].faults);
}

long vgh_sigbus_total_faults(void) { return atomic_load(&total_faults); }
