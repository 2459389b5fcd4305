/* net_sandbox_test.c -- privilege drop and seccomp allow-list, each in a forked child. */
#define _GNU_SOURCE /* accept4 and pipe2, as libuv calls them */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/sandbox.h"

/* A child reports with its exit code, never with cmocka asserts: a failed assert would jump back
 * into the child's copy of the test runner and run the remaining tests twice. */
typedef int (*child_fn)(void *arg);

static int run_child(child_fn fn, void *arg)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(fn(arg));
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static void assert_exit_ok(int status)
{
    if (WIFSIGNALED(status)) {
        fail_msg("child killed by signal %d", WTERMSIG(status));
    }
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0) {
        fail_msg("child failed at check %d", WEXITSTATUS(status));
    }
}

static void assert_killed_by_sigsys(int status)
{
    if (WIFEXITED(status)) {
        fail_msg("child survived a forbidden call (exit %d)", WEXITSTATUS(status));
    }
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSYS);
}

/* Value of a "Name:\t..." line of /proc/self/status, or "" */
static void proc_status(const char *name, char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL) {
        return;
    }
    char line[256];
    size_t n = strlen(name);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            snprintf(out, len, "%s", v);
            out[strcspn(out, "\n")] = '\0';
            break;
        }
    }
    fclose(f);
}

static void skip_without_seccomp(void)
{
    if (!sandbox_seccomp_supported()) {
        fprintf(stderr, "SKIP: no seccomp with thread sync on this kernel\n");
        skip();
    }
}

static void skip_unless_root(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: privilege drop tests need root\n");
        skip();
    }
}

/* ---- seccomp ---- */

static int child_forbidden_socket(void *arg)
{
    (void)arg;
    char err[256];
    if (sandbox_install_seccomp(err, sizeof(err)) != 0) {
        fprintf(stderr, "install: %s\n", err);
        return 1;
    }
    /* A compromised worker opening a raw or outbound socket: must never return. */
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    (void)fd;
    return 2;
}

static void test_seccomp_kills_forbidden_socket(void **state)
{
    (void)state;
    skip_without_seccomp();
    assert_killed_by_sigsys(run_child(child_forbidden_socket, NULL));
}

static int child_forbidden_execve(void *arg)
{
    (void)arg;
    char err[256];
    if (sandbox_install_seccomp(err, sizeof(err)) != 0) {
        return 1;
    }
    char *argv[] = {"/bin/true", NULL};
    char *envp[] = {NULL};
    execve("/bin/true", argv, envp);
    return 2;
}

static int child_forbidden_exec_mapping(void *arg)
{
    (void)arg;
    char err[256];
    if (sandbox_install_seccomp(err, sizeof(err)) != 0) {
        return 1;
    }
    void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    (void)p;
    return 2;
}

static int child_forbidden_connect(void *arg)
{
    int fd = *(int *)arg; /* made before the filter, as the listeners are */
    char err[256];
    if (sandbox_install_seccomp(err, sizeof(err)) != 0) {
        return 1;
    }
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connect(fd, (struct sockaddr *)&sin, sizeof(sin));
    return 2;
}

/* bpf() with `cmd` on a map descriptor that does not exist: EBADF if the filter lets it through. */
static int bpf_on_no_map(int cmd)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof(attr));
    attr.map_fd = (uint32_t)-1;
    return (int)syscall(SYS_bpf, cmd, &attr, sizeof(attr));
}

/* The listener drop filter's map may change (update, delete); nothing else bpf() does is allowed.
 */
static int child_bpf_map_updates(void *arg)
{
    int load = *(int *)arg;
    char err[256];
    if (sandbox_install_seccomp(err, sizeof(err)) != 0) {
        return 1;
    }
    if (bpf_on_no_map(BPF_MAP_UPDATE_ELEM) != -1 || errno != EBADF) {
        return 2;
    }
    if (bpf_on_no_map(BPF_MAP_DELETE_ELEM) != -1 || errno != EBADF) {
        return 3;
    }
    if (load) {
        bpf_on_no_map(BPF_PROG_LOAD);
        return 4;
    }
    return 0;
}

static void test_seccomp_allows_only_bpf_map_updates(void **state)
{
    (void)state;
    skip_without_seccomp();
    int load = 0;
    assert_exit_ok(run_child(child_bpf_map_updates, &load));
    load = 1;
    assert_killed_by_sigsys(run_child(child_bpf_map_updates, &load));
}

static void test_seccomp_kills_exec_connect_and_exec_mappings(void **state)
{
    (void)state;
    skip_without_seccomp();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_killed_by_sigsys(run_child(child_forbidden_connect, &fd));
    close(fd);
    if (sandbox_sanitizer_build()) {
        /* The ASan runtime needs execve (symbolizer) and plain mmap; release builds do not. */
        fprintf(stderr, "note: ASan build, execve and PROT_EXEC checks skipped\n");
        return;
    }
    assert_killed_by_sigsys(run_child(child_forbidden_execve, NULL));
    assert_killed_by_sigsys(run_child(child_forbidden_exec_mapping, NULL));
}

static void *thread_noop(void *arg)
{
    return arg;
}

/* What a worker, the evidence writer and the registry follower do after start-up. */
static int child_server_calls(void *arg)
{
    const char *dir = arg;
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t slen = sizeof(sin);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 8) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &slen) != 0) {
        return 1;
    }
    int cfd = socket(AF_INET, SOCK_STREAM, 0); /* the bot */
    if (cfd < 0 || connect(cfd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
        return 2;
    }
    char err[256];
    if (sandbox_install_seccomp(err, sizeof(err)) != 0) {
        fprintf(stderr, "install: %s\n", err);
        return 3;
    }
    char status[64];
    proc_status("Seccomp", status, sizeof(status));
    if (strcmp(status, "2") != 0) {
        return 4;
    }
    /* event loop */
    int ep = epoll_create1(EPOLL_CLOEXEC);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int pfd[2];
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (ep < 0 || efd < 0 || pipe2(pfd, O_CLOEXEC | O_NONBLOCK) != 0 ||
        epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0 || epoll_wait(ep, &ev, 1, 1000) != 1) {
        return 5;
    }
    int afd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    char buf[8] = "hello";
    if (afd < 0 || write(cfd, buf, 5) != 5 || epoll_ctl(ep, EPOLL_CTL_ADD, afd, &ev) != 0 ||
        epoll_wait(ep, &ev, 1, 1000) != 1 || read(afd, buf, sizeof(buf)) != 5 ||
        write(afd, "ok", 2) != 2 || shutdown(afd, SHUT_WR) != 0) {
        return 6;
    }
    /* evidence files: write, sync_file_range (large journal batches), fdatasync, rename, mkdir,
     * unlink */
    char path[512], path2[512], sub[512];
    snprintf(path, sizeof(path), "%s/tile.tmp", dir);
    snprintf(path2, sizeof(path2), "%s/tile", dir);
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || pwrite(fd, buf, 2, 0) != 2 ||
        sync_file_range(fd, 0, 2, SYNC_FILE_RANGE_WRITE) != 0 || fdatasync(fd) != 0 ||
        fsync(fd) != 0 || close(fd) != 0 || rename(path, path2) != 0 || mkdir(sub, 0755) != 0 ||
        rmdir(sub) != 0 || unlink(path2) != 0) {
        return 7;
    }
    /* malloc large (mmap), time, sleep, a new thread (clone3 -> ENOSYS -> clone) */
    char *big = malloc(8 << 20);
    struct timespec ts;
    if (big == NULL || clock_gettime(CLOCK_MONOTONIC, &ts) != 0 ||
        clock_gettime(CLOCK_REALTIME, &ts) != 0) {
        return 8;
    }
    memset(big, 1, 8 << 20);
    free(big);
    struct timespec nap = {0, 1000000};
    nanosleep(&nap, NULL);
    pthread_t t;
    void *ret = NULL;
    if (pthread_create(&t, NULL, thread_noop, &nap) != 0 || pthread_join(t, &ret) != 0 ||
        ret != &nap) {
        return 9;
    }
    close(afd);
    close(cfd);
    close(lfd);
    close(ep);
    close(efd);
    return 0;
}

static void test_seccomp_allows_what_the_server_does(void **state)
{
    (void)state;
    skip_without_seccomp();
    char dir[] = "/tmp/sinkd-sandbox-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_exit_ok(run_child(child_server_calls, dir));
    rmdir(dir);
}

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go;
};

static void *thread_socket_after_go(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->go) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    (void)fd;
    return NULL;
}

/* A thread that existed before the filter is covered too (TSYNC). */
static int child_thread_covered(void *arg)
{
    (void)arg;
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    pthread_t t;
    if (pthread_create(&t, NULL, thread_socket_after_go, &g) != 0) {
        return 1;
    }
    char err[256];
    if (sandbox_install_seccomp(err, sizeof(err)) != 0) {
        fprintf(stderr, "install: %s\n", err);
        return 2;
    }
    pthread_mutex_lock(&g.mu);
    g.go = 1;
    pthread_cond_signal(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(t, NULL);
    return 3;
}

static void test_seccomp_covers_existing_threads(void **state)
{
    (void)state;
    skip_without_seccomp();
    assert_killed_by_sigsys(run_child(child_thread_covered, NULL));
}

static int child_log_mode(void *arg)
{
    (void)arg;
    char err[256];
    if (sandbox_install_seccomp_mode(SANDBOX_SECCOMP_LOG, err, sizeof(err)) != 0) {
        fprintf(stderr, "install: %s\n", err);
        return 1;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0); /* allowed, only logged by the kernel */
    if (fd < 0) {
        return 2;
    }
    close(fd);
    return 0;
}

static void test_seccomp_log_mode_survives(void **state)
{
    (void)state;
    skip_without_seccomp();
    assert_exit_ok(run_child(child_log_mode, NULL));
}

/* ---- users and capabilities ---- */

static int child_drop_to_nobody(void *arg)
{
    const char *state_dir = arg;
    struct passwd *pw = getpwnam("nobody");
    if (pw == NULL) {
        return 1;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    /* Root's supplementary groups must not survive the drop. */
    gid_t root_groups[] = {0, 4};
    if (setgroups(2, root_groups) != 0) {
        return 13;
    }
    char err[256];
    if (sandbox_drop_privileges("nobody", state_dir, err, sizeof(err)) != 0) {
        fprintf(stderr, "drop: %s\n", err);
        return 2;
    }
    if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
        return 3;
    }
    if (setuid(0) != -1 || setgid(0) != -1 || seteuid(0) != -1) {
        return 4;
    }
    gid_t groups[64];
    int n = getgroups(64, groups);
    for (int i = 0; i < n; i++) {
        if (groups[i] == 0 || groups[i] == 4) {
            return 5;
        }
    }
    char v[64];
    const char *zero = "0000000000000000";
    proc_status("CapEff", v, sizeof(v));
    if (strcmp(v, zero) != 0) {
        return 6;
    }
    proc_status("CapPrm", v, sizeof(v));
    if (strcmp(v, zero) != 0) {
        return 7;
    }
    proc_status("CapBnd", v, sizeof(v));
    if (strcmp(v, zero) != 0) {
        return 8;
    }
    proc_status("CapAmb", v, sizeof(v));
    if (strcmp(v, zero) != 0) {
        return 9;
    }
    proc_status("NoNewPrivs", v, sizeof(v));
    if (strcmp(v, "1") != 0) {
        return 10;
    }
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) {
        return 11;
    }
    /* Root-only files are out of reach now. */
    if (open("/etc/shadow", O_RDONLY) >= 0 || errno != EACCES) {
        return 12;
    }
    return 0;
}

static void test_drop_to_nobody(void **state)
{
    (void)state;
    skip_unless_root();
    assert_exit_ok(run_child(child_drop_to_nobody, NULL));
}

static int child_drop_keep_uid(void *arg)
{
    (void)arg;
    char err[256];
    uid_t before = geteuid();
    if (sandbox_drop_privileges(NULL, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "drop: %s\n", err);
        return 1;
    }
    char v[64];
    proc_status("CapEff", v, sizeof(v));
    if (geteuid() != before || strcmp(v, "0000000000000000") != 0) {
        return 2;
    }
    proc_status("NoNewPrivs", v, sizeof(v));
    if (strcmp(v, "1") != 0) {
        return 3;
    }
    /* No uid change here, so only the explicit prctl makes it non-dumpable. */
    return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : 4;
}

static void test_drop_without_user_drops_capabilities(void **state)
{
    (void)state;
    assert_exit_ok(run_child(child_drop_keep_uid, NULL));
}

static void *thread_wait_gate(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->go) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

static int child_drop_with_live_thread(void *arg)
{
    (void)arg;
    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    pthread_t t;
    if (pthread_create(&t, NULL, thread_wait_gate, &g) != 0) {
        return 1;
    }
    char err[256] = "";
    int rc = sandbox_drop_privileges(NULL, NULL, err, sizeof(err));
    pthread_mutex_lock(&g.mu);
    g.go = 1;
    pthread_cond_signal(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(t, NULL);
    if (rc == 0) {
        return 2;
    }
    return strstr(err, "threads") != NULL ? 0 : 3;
}

static void test_drop_refuses_with_threads(void **state)
{
    (void)state;
    assert_exit_ok(run_child(child_drop_with_live_thread, NULL));
}

/* ---- the state directory ---- */

static void make_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
}

static uid_t owner(const char *path)
{
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    return st.st_uid;
}

static void test_state_dir_unusable_then_prepared(void **state)
{
    (void)state;
    skip_unless_root();
    struct passwd *pw = getpwnam("nobody");
    assert_non_null(pw);
    uid_t nobody = pw->pw_uid;
    char top[] = "/tmp/sinkd-sandbox-XXXXXX";
    assert_non_null(mkdtemp(top));
    assert_int_equal(chmod(top, 0755), 0); /* mkdtemp makes 0700: nobody could not enter */
    char st[600], log[700], tile[800], key[800], outside[600], symlink_path[800], hard[800],
        hard2[800];
    snprintf(st, sizeof(st), "%s/state", top);
    snprintf(log, sizeof(log), "%s/log", st);
    snprintf(tile, sizeof(tile), "%s/tile", log);
    snprintf(key, sizeof(key), "%s/key", st);
    snprintf(outside, sizeof(outside), "%s/outside", top);
    snprintf(symlink_path, sizeof(symlink_path), "%s/link", st);
    assert_int_equal(mkdir(st, 0700), 0);
    assert_int_equal(mkdir(log, 0755), 0);
    make_file(tile);
    make_file(key);
    make_file(outside);
    assert_int_equal(symlink(outside, symlink_path), 0);

    /* Root-owned 0700: nobody cannot use it, and the drop says so. */
    char err[512];
    int status = run_child(child_drop_to_nobody, st);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 2);

    assert_int_equal(sandbox_prepare_state_dir(st, "nobody", err, sizeof(err)), 0);
    assert_int_equal(owner(st), nobody);
    assert_int_equal(owner(log), nobody);
    assert_int_equal(owner(tile), nobody);
    assert_int_equal(owner(key), nobody);
    assert_int_equal(owner(symlink_path), 0); /* the link itself is left alone */
    assert_int_equal(owner(outside), 0);      /* and never followed */
    assert_exit_ok(run_child(child_drop_to_nobody, st));

    /* A hard link to a file outside: refused, and the file keeps its owner. */
    snprintf(hard, sizeof(hard), "%s/hard", top);
    snprintf(hard2, sizeof(hard2), "%s/hard", log);
    make_file(hard);
    assert_int_equal(link(hard, hard2), 0);
    assert_int_equal(sandbox_prepare_state_dir(st, "nobody", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "hard links"));
    assert_int_equal(owner(hard), 0);

    /* Not root, or no user: nothing to do. */
    assert_int_equal(sandbox_prepare_state_dir(st, NULL, err, sizeof(err)), 0);
    assert_int_equal(sandbox_prepare_state_dir("/nonexistent/x", "nobody", err, sizeof(err)), -1);

    unlink(hard2);
    unlink(hard);
    unlink(symlink_path);
    unlink(outside);
    unlink(key);
    unlink(tile);
    rmdir(log);
    rmdir(st);
    rmdir(top);
}

static void test_check_user_rules(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(sandbox_check_user("no-such-user-sinkd-test", true, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no such user"));
    assert_int_equal(sandbox_check_user("root", true, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "root"));
    if (geteuid() == 0) {
        assert_int_equal(sandbox_check_user(NULL, false, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "--user"));
        assert_int_equal(sandbox_check_user(NULL, true, err, sizeof(err)), 0);
        assert_int_equal(sandbox_check_user("nobody", false, err, sizeof(err)), 0);
    } else {
        assert_int_equal(sandbox_check_user(NULL, false, err, sizeof(err)), 0);
        struct passwd *pw = getpwuid(geteuid());
        if (pw != NULL && strcmp(pw->pw_name, "nobody") != 0) {
            assert_int_equal(sandbox_check_user("nobody", false, err, sizeof(err)), -1);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seccomp_kills_forbidden_socket),
        cmocka_unit_test(test_seccomp_kills_exec_connect_and_exec_mappings),
        cmocka_unit_test(test_seccomp_allows_only_bpf_map_updates),
        cmocka_unit_test(test_seccomp_allows_what_the_server_does),
        cmocka_unit_test(test_seccomp_covers_existing_threads),
        cmocka_unit_test(test_seccomp_log_mode_survives),
        cmocka_unit_test(test_drop_to_nobody),
        cmocka_unit_test(test_drop_without_user_drops_capabilities),
        cmocka_unit_test(test_drop_refuses_with_threads),
        cmocka_unit_test(test_state_dir_unusable_then_prepared),
        cmocka_unit_test(test_check_user_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
