// SPDX-License-Identifier: GPL-2.0
/*
 * /init of the matrix guests (`cargo xtask matrix`): a static program, so that a guest of any
 * architecture needs nothing but what the cross compiler links (no busybox for it).
 *
 * It mounts what the selftests need, then runs each suite named on the command line as
 * `name:impl:limit:program[,argument...]` (program in /bin; impl `c` or `rust` is selected
 * through the test-only debugfs switch, any other, such as `c-vs-rust` for a program that
 * switches itself, runs it as it is; limit in seconds) with its output on the results channel,
 * framed by the markers the host parses for every other boot:
 *   @@SUITE-BEGIN <name> <impl> ... @@SUITE-END <name> <impl> rc=<n>, then @@ALL-DONE.
 * The results channel is the device in the `results=` kernel parameter (the kernel passes
 * unknown parameters to init as environment variables), the console otherwise. At the end
 * it resets the machine, which ends QEMU (-no-reboot): not every guest can power off.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#define IMPL_SWITCH "/sys/kernel/debug/pagemap_scan/impl"

static FILE *res;

static void mnt(const char *src, const char *dst, const char *type)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, 0, NULL) && errno != EBUSY)
		fprintf(res, "@@NOTE mount %s on %s: %s\n", type, dst, strerror(errno));
}

/* 0 when the implementation is selected (or none is asked for), -1 otherwise. */
static int select_impl(const char *impl)
{
	char buf[16] = "";
	int fd;

	if (strcmp(impl, "c") && strcmp(impl, "rust"))
		return 0;
	fd = open(IMPL_SWITCH, O_RDWR);
	if (fd < 0)
		/* Without the switch only the C implementation exists. */
		return strcmp(impl, "c") ? -1 : 0;
	if (write(fd, impl, strlen(impl)) < 0 || lseek(fd, 0, SEEK_SET) < 0 ||
	    read(fd, buf, sizeof(buf) - 1) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	buf[strcspn(buf, "\n")] = 0;
	return strcmp(buf, impl) ? -1 : 0;
}

static void run_suite(char *spec)
{
	char *name = strtok(spec, ":"), *impl = strtok(NULL, ":"), *lim = strtok(NULL, ":");
	char *cmd = strtok(NULL, ":");
	char *argv[16], path[256];
	int status, rc, argc = 0, waited = 0;
	pid_t pid;

	if (!name || !impl || !lim || !cmd) {
		fprintf(res, "@@NOTE bad suite spec\n");
		return;
	}
	fprintf(res, "@@SUITE-BEGIN %s %s\n", name, impl);
	fflush(res);
	if (select_impl(impl)) {
		fprintf(res, "@@SUITE-END %s %s rc=125 (cannot select implementation)\n",
			name, impl);
		fflush(res);
		return;
	}
	for (argv[argc] = strtok(cmd, ","); argv[argc] && argc < 15;)
		argv[++argc] = strtok(NULL, ",");
	argv[argc] = NULL;
	snprintf(path, sizeof(path), "/bin/%s", argv[0]);
	argv[0] = path;	/* pagemap_ioctl maps its own file through argv[0] */
	pid = fork();
	if (pid == 0) {
		int fd = fileno(res);

		if (chdir("/tmp") == 0 && dup2(fd, 1) >= 0 && dup2(fd, 2) >= 0)
			execv(path, argv);
		_exit(127);
	}
	if (pid < 0) {
		fprintf(res, "@@SUITE-END %s %s rc=126 (fork: %s)\n", name, impl,
			strerror(errno));
		fflush(res);
		return;
	}
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		if (waited++ >= atoi(lim)) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		sleep(1);
	}
	rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	fprintf(res, "@@SUITE-END %s %s rc=%d secs=%d\n", name, impl, rc, waited);
	fflush(res);
}

/*
 * Swap on zram, as the x86 guests' busybox init sets it up (mkswap and swapon), so that
 * MADV_PAGEOUT swaps: a 256 MiB device with a version-1 swap header.
 */
static void zram_swap(void)
{
	long page = sysconf(_SC_PAGESIZE);
	char *hdr = calloc(1, page);
	unsigned int *info = (unsigned int *)(hdr + 1024);
	int fd = open("/sys/block/zram0/disksize", O_WRONLY);
	int ok = fd >= 0 && write(fd, "256M", 4) == 4;

	if (fd >= 0)
		close(fd);
	fd = ok && hdr ? open("/dev/zram0", O_RDWR) : -1;
	if (fd >= 0) {
		info[0] = 1;				/* version */
		info[1] = (256 << 20) / page - 1;	/* last_page */
		memcpy(hdr + page - 10, "SWAPSPACE2", 10);
		ok = write(fd, hdr, page) == page && fsync(fd) == 0;
		close(fd);
		ok = ok && swapon("/dev/zram0", 0) == 0;
	} else {
		ok = 0;
	}
	free(hdr);
	fprintf(res, "@@NOTE %s\n", ok ? "swap on zram0" : "no swap");
}

int main(int argc, char **argv)
{
	const char *dev = getenv("results");
	struct utsname u;
	int i;

	mnt("devtmpfs", "/dev", "devtmpfs");
	res = fopen(dev ? dev : "/dev/console", "w");
	if (!res)
		res = fopen("/dev/console", "w");
	if (!res)
		return 1;
	setvbuf(res, NULL, _IOLBF, 0);
	mnt("proc", "/proc", "proc");
	mnt("sysfs", "/sys", "sysfs");
	mnt("tmpfs", "/tmp", "tmpfs");
	mnt("tmpfs", "/dev/shm", "tmpfs");
	mnt("debugfs", "/sys/kernel/debug", "debugfs");
	uname(&u);
	fprintf(res, "@@GUEST-READY %s %s cpus=%ld\n", u.release, u.machine,
		sysconf(_SC_NPROCESSORS_ONLN));
	zram_swap();
	for (i = 1; i < argc; i++)
		run_suite(argv[i]);
	fprintf(res, "@@ALL-DONE\n");
	fflush(res);
	sync();
	reboot(RB_AUTOBOOT);	/* QEMU runs with -no-reboot: a reset ends it */
	return 0;
}
