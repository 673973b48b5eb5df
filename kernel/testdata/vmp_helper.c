// SPDX-License-Identifier: GPL-2.0
/*
 * vmp_helper - a static helper for the qemu test's initramfs (kernel/qemu_test.go).
 * It creates processes in known states and measures read cost, things busybox sh
 * cannot do reliably:
 *
 *   vmp_helper zombie        fork a child that exits at once and never reap it:
 *                            the child stays a zombie while this process sleeps
 *   vmp_helper stop          stop itself with raise(SIGSTOP) (no race with the
 *                            shell's fork/exec, unlike `cmd & kill -STOP $!`)
 *   vmp_helper spin          busy loop forever (one CPU at 100 %)
 *   vmp_helper mt MIB        a busy multi-threaded process whose leader sleeps:
 *                            touch MIB MiB, rename itself "vmp-mt", start one
 *                            thread that spins and two that sleep, and sleep in
 *                            the leader; prints "mt PID threads N"
 *   vmp_helper hog MIB       touch MIB MiB of memory, rename itself to a name that
 *                            needs JSON escaping, sleep: the largest user process
 *   vmp_helper bench FILE N  read FILE to its end N times (open, read, close) and
 *                            print "bench FILE N reads NS ns BYTES bytes/read"
 *   vmp_helper churn         fork children that touch some memory and exit, and
 *                            reap them, forever: processes appear, lose their mm
 *                            and become zombies while the modules walk the list
 *
 * Built with gcc -static -pthread by the test.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Quote, backslash, tab and a two-byte UTF-8 "é": 9 bytes, under TASK_COMM_LEN. */
#define HOG_NAME "vmp\"q\\\t\xc3\xa9"

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int bench(const char *path, long n)
{
	static char buf[1 << 16];
	long long t0, t1;
	long i, bytes = 0;

	t0 = now_ns();
	for (i = 0; i < n; i++) {
		int fd = open(path, O_RDONLY);
		ssize_t r;

		if (fd < 0) {
			perror(path);
			return 1;
		}
		bytes = 0;
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			bytes += r;
		close(fd);
		if (r < 0) {
			perror(path);
			return 1;
		}
	}
	t1 = now_ns();
	printf("bench %s %ld reads %lld ns %ld bytes/read\n", path, n, t1 - t0, bytes);
	return 0;
}

static void *spin_thread(void *arg)
{
	volatile unsigned long x = 0;

	(void)arg;
	for (;;)
		x++;
	return NULL;
}

static void *sleep_thread(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static char *touch(size_t mib)
{
	size_t sz = mib << 20;
	char *p = malloc(sz);

	if (p)
		memset(p, 1, sz);
	/* Keep the compiler from dropping the unused allocation. */
	__asm__ volatile("" : : "r"(p) : "memory");
	return p;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(cmd, "zombie")) {
		pid_t child = fork();

		if (child == 0)
			_exit(0);
		printf("zombie child %d\n", (int)child);
		for (;;)
			pause();
	}
	if (!strcmp(cmd, "stop")) {
		raise(SIGSTOP);
		return 0;
	}
	if (!strcmp(cmd, "spin")) {
		volatile unsigned long x = 0;

		for (;;)
			x++;
	}
	if (!strcmp(cmd, "hog") && argc == 3) {
		if (!touch((size_t)atol(argv[2])))
			return 1;
		prctl(PR_SET_NAME, HOG_NAME, 0, 0, 0);
		for (;;)
			pause();
	}
	if (!strcmp(cmd, "mt") && argc == 3) {
		void *(*body[])(void *) = { spin_thread, sleep_thread, sleep_thread };
		pthread_t t;
		unsigned int i;

		if (!touch((size_t)atol(argv[2])))
			return 1;
		/* Threads take the name at creation: name the process first. */
		prctl(PR_SET_NAME, "vmp-mt", 0, 0, 0);
		for (i = 0; i < sizeof(body) / sizeof(body[0]); i++) {
			if (pthread_create(&t, NULL, body[i], NULL)) {
				perror("pthread_create");
				return 1;
			}
		}
		printf("mt %d threads %u\n", (int)getpid(), i + 1);
		for (;;)
			pause();
	}
	if (!strcmp(cmd, "churn")) {
		for (;;) {
			pid_t c = fork();

			if (c == 0) {
				char *p = malloc(1 << 20);

				if (p)
					memset(p, 2, 1 << 20);
				__asm__ volatile("" : : "r"(p) : "memory");
				_exit(0);
			}
			if (c > 0)
				waitpid(c, NULL, 0);
		}
	}
	if (!strcmp(cmd, "bench") && argc == 4)
		return bench(argv[2], atol(argv[3]));
	fprintf(stderr, "usage: vmp_helper zombie|stop|spin|hog MIB|mt MIB|churn|bench FILE N\n");
	return 2;
}
