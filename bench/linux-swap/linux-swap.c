/*
 * Linux's own swap paths on this machine, measured the way hv's are (bench/linux-swap/run.sh builds and runs it):
 * 64 MiB of pseudo-random anonymous memory; each round MADV_PAGEOUT of all of it (swap-out: unmap, swap-cache add,
 * writeback submitted) and, paired in the same round, plain 32-page pwrites of the same bytes to a file; then, once
 * writeback is done and the clean swap-cache copies are reclaimed (the cgroup's memory reclaim, argv[2]),
 * a sequential touch of every page (swap-in: readahead from the swap device) and plain 8-page preads of the file from
 * the page cache. Prints the medians and the median of the per-round ratios, like `hv bench swap-out|swap-in`.
 * argv[1]: rounds (default 10); argv[2]: the cgroup file whose write reclaims the cgroup's memory
 * (cgroup v1 memory.force_empty, written "0"; cgroup v2 memory.reclaim, written "1G"); argv[3]: the plain file.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>
#include <stdint.h>
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e9+t.tv_nsec;}
static void reclaim(const char *file){
  const char *what = strstr(file, "force_empty") ? "0" : "1G";
  int fd=open(file,O_WRONLY);
  if(fd<0||write(fd,what,strlen(what))<0){perror(file);exit(2);}
  close(fd);
}
static int cmp(const void*a,const void*b){double x=*(double*)a,y=*(double*)b;return x<y?-1:x>y;}
int main(int argc,char**argv){
  const size_t pages=16384, ps=4096, bytes=pages*ps; int rounds=argc>1?atoi(argv[1]):10; const char *reclaimFile=argc>2?argv[2]:"/sys/fs/cgroup/memory.reclaim";
  if(rounds<1||rounds>64){fprintf(stderr,"rounds: 1 to 64\n");return 2;}
  uint64_t *src=malloc(bytes); uint64_t x=88172645463325252ULL;
  for(size_t i=0;i<bytes/8;i++){x^=x<<13;x^=x>>7;x^=x<<17;src[i]=x;}
  char *buf=aligned_alloc(4096,bytes);
  int fd=open(argc>3?argv[3]:"/tmp/linux-swap-plain",O_RDWR|O_CREAT|O_TRUNC,0600); ftruncate(fd,bytes+ps);
  pwrite(fd,src,bytes,ps);
  if(mlock(src,bytes)||mlock(buf,bytes)){perror("mlock");return 1;}
  char *m=mmap(0,bytes,PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  double out[64],in[64],pw[64],pr[64],ro[64],ri[64];
  for(int r=0;r<rounds;r++){
    memcpy(m,src,bytes);
    double t0=now(); if(madvise(m,bytes,MADV_PAGEOUT)){perror("madvise");return 1;} double t1=now();
    for(size_t i=0;i<bytes;i+=32*ps) pwrite(fd,(char*)src+i,32*ps,ps+i);
    double t2x=now();
    usleep(300000); reclaim(reclaimFile); /* drop the clean swap-cache copies */
    for(size_t i=0;i<bytes;i+=32*ps) pread(fd,buf+i,32*ps,ps+i); /* the plain file back in the page cache */
    double t2=now(); double pwt=t2x-t1;
    volatile char sink=0; for(size_t i=0;i<bytes;i+=ps) sink+=m[i];
    double t3=now();
    for(size_t i=0;i<bytes;i+=8*ps) pread(fd,buf+i,8*ps,ps+i);
    double t4=now();
    out[r]=(t1-t0)/pages; pw[r]=pwt/pages; in[r]=(t3-t2)/pages; pr[r]=(t4-t3)/pages; ro[r]=out[r]/pw[r]; ri[r]=in[r]/pr[r];
  }
  if(memcmp(m,src,bytes)){printf("MISMATCH\n");return 1;}
  qsort(out,rounds,8,cmp);qsort(in,rounds,8,cmp);qsort(pw,rounds,8,cmp);qsort(pr,rounds,8,cmp);qsort(ro,rounds,8,cmp);qsort(ri,rounds,8,cmp);
  printf("Linux swap-out %.0f ns/page (median; min %.0f), plain 32-page pwrite %.0f, paired ratio %.2f\n",out[rounds/2],out[0],pw[rounds/2],ro[rounds/2]);
  printf("Linux swap-in  %.0f ns/page (median; min %.0f), plain 8-page pread  %.0f, paired ratio %.2f\n",in[rounds/2],in[0],pr[rounds/2],ri[rounds/2]);
  return 0;
}
