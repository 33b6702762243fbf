// Drops IPv4 ICMP, passes everything else. Two programs in one object: `drop_icmp` for a tc
// clsact hook (direct action) and `xdp_drop_icmp` for XDP. No kernel or libbpf headers needed:
//   clang -O2 -g -target bpf -c drop_icmp.c -o drop_icmp.o
// The topology file examples/bpf-drop.yaml attaches it; `vnet up` loads it (through aya).

typedef unsigned int __u32;
typedef unsigned char __u8;

#define SEC(name) __attribute__((section(name), used))

// The first fields of struct __sk_buff (linux/bpf.h), up to data_end.
struct __sk_buff {
    __u32 len, pkt_type, mark, queue_mapping, protocol, vlan_present, vlan_tci, vlan_proto;
    __u32 priority, ingress_ifindex, ifindex, tc_index, cb[5], hash, tc_classid, data, data_end;
};

struct xdp_md {
    __u32 data, data_end;
};

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2
#define XDP_DROP 1
#define XDP_PASS 2

// Ethernet header (14 bytes) then IPv4: EtherType 0x0800 at 12, IP protocol at 14 + 9.
static inline int is_icmp(__u8 *p, __u8 *end) {
    if (p + 34 > end)
        return 0;
    return p[12] == 0x08 && p[13] == 0x00 && p[23] == 1;
}

SEC("classifier")
int drop_icmp(struct __sk_buff *skb) {
    __u8 *p = (__u8 *)(long)skb->data;
    __u8 *end = (__u8 *)(long)skb->data_end;
    return is_icmp(p, end) ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("xdp")
int xdp_drop_icmp(struct xdp_md *ctx) {
    __u8 *p = (__u8 *)(long)ctx->data;
    __u8 *end = (__u8 *)(long)ctx->data_end;
    return is_icmp(p, end) ? XDP_DROP : XDP_PASS;
}

char _license[] SEC("license") = "GPL";
