"""blog-service: blog posts and the blog SPA."""
