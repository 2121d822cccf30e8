/* dh_frame.h: stdin/stdout framing codecs (placeholder; being written). See LICENSE. */
#ifndef DH_FRAME_H
#define DH_FRAME_H
#endif
